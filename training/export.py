"""Convert a float Keras classifier to TFLite in each quantization mode, and write bundles.

A bundle with the typicality check serves a two-output model (`with_embedding_output`): the
class probabilities and the pooled embedding the check scores, from one LiteRT call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

QUANTIZATION_MODES = ("fp32", "dynamic", "fp16", "int8")


def convert_to_tflite(
    model,
    mode: str,
    representative_batches: Callable[[], Iterable[np.ndarray]] | None = None,
) -> bytes:
    """TFLite flatbuffer bytes for `model` in one quantization mode.

    int8 is full-integer quantization calibrated on `representative_batches` (real training
    images, already normalised, one image per batch); input and output stay float32 so every
    mode is called the same way.
    """
    import tensorflow as tf

    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"unknown quantization mode {mode!r}; choose from {QUANTIZATION_MODES}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if representative_batches is None:
            raise ValueError("int8 quantization needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.asarray(b, np.float32)] for b in representative_batches())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def with_embedding_output(classifier):
    """The flat classifier with its pooled `features` as a second output (same weights)."""
    import keras

    return keras.Model(classifier.input, [classifier.output, classifier.get_layer("features").output])


def render_model_card(manifest, extra_sections: dict[str, str] | None = None,
                      lead_sections: dict[str, str] | None = None) -> str:
    """MODEL_CARD.md text from a BundleManifest: what the model is, and what it is not.

    lead_sections come right after the disclaimer (what a reader must see first: the figures on
    photos from elsewhere), extra_sections at the end."""
    metrics = manifest.metrics or {}
    lines = [
        f"# Model card: {manifest.model_id} {manifest.model_version}",
        "",
        "**A screening aid, not a diagnosis.** It estimates whether a skin photo resembles mpox so "
        "that people can be pointed to testing and care; a clinician must confirm every result.",
        "",
    ]
    for title, text in (lead_sections or {}).items():
        lines += [f"## {title}", text, ""]
    lines += [
        "## Model",
        f"- Backbone: {manifest.backbone}; input {manifest.input_size[0]}x{manifest.input_size[1]} "
        f"RGB, normalisation `{manifest.normalisation.value}`.",
        f"- Classes: {', '.join(manifest.class_names)}; positive class: `{manifest.positive_class}`.",
        f"- Serving model: TFLite, quantization `{manifest.quantization}`"
        + ("; probabilities averaged over the photo and its mirror image." if manifest.view_averaging == "mirror" else "."),
        f"- Decision: positive when P({manifest.positive_class}) >= {manifest.thresholds.positive:.3f}; "
        + (f"inconclusive from {manifest.thresholds.inconclusive:.3f}; negative below."
           if manifest.thresholds.inconclusive < manifest.thresholds.positive
           else "negative below (no inconclusive band)."),
        "",
        "## Training data",
    ]
    data = manifest.training_data or {}
    if data:
        lines += [f"- {key}: {value}" for key, value in data.items()]
    else:
        lines.append("- not recorded")
    lines += ["", "## Metrics"]
    if metrics:
        lines += [f"- {key}: {value}" for key, value in metrics.items()]
    else:
        lines.append("- not measured")
    lines += [
        "",
        "## Intended use",
        "Triage of self-taken photos of skin lesions in a Telegram screening service, with "
        "positive screens reviewed by clinicians.",
        "",
        "## Limitations",
        "- Not a medical device and not validated clinically.",
        "- Photos unlike the training data (other body sites, skin tones, cameras, lighting) may "
        "be misjudged; the quality gate refuses only the clearest failures.",
        "- Heatmaps show where the model looked, not why a lesion is mpox.",
    ]
    lines += ["", *_typicality_card_lines(manifest.typicality)]
    for title, text in (extra_sections or {}).items():
        lines += ["", f"## {title}", text]
    return "\n".join(lines) + "\n"


def _typicality_card_lines(spec) -> list[str]:
    if spec is None:
        return ["## Pictures unlike the training photos",
                "- No typicality check in this bundle: any picture that passes the quality gate gets a verdict."]
    method = spec.method.value + (f" (k = {spec.neighbours})" if spec.neighbours else "")
    return [
        "## Pictures unlike the training photos",
        f"- Refused (`retake`, reason `not_a_close_skin_photo`) before any verdict when the {method} score of the "
        f"served model's pooled embedding exceeds {spec.threshold:.4f}; black-and-white pictures are refused by "
        "the quality gate.",
        f"- Threshold chosen on out-of-fold scores of {spec.photos} real training photos ({spec.folds} group-aware "
        f"folds) to refuse at most {spec.target_refusal_rate:.0%} of real photos; out of fold it refused "
        f"{spec.out_of_fold_refusal_rate:.1%}. Never tuned on non-skin pictures.",
    ]


def export_bundle(
    folder,
    keras_model,
    manifest,
    representative_batches: Callable[[], Iterable[np.ndarray]] | None = None,
    extra_card_sections: dict[str, str] | None = None,
    typicality=None,
    tflite: bytes | None = None,
    lead_card_sections: dict[str, str] | None = None,
):
    """Convert `keras_model` as `manifest.quantization` says and write a verified bundle.

    typicality: a `training.typicality.TypicalityFit` to carry (schema 2). tflite: the served
    flatbuffer when the caller converted it already (it must have the embedding output when
    `typicality` is given: the fit is made on that very model's embeddings)."""
    import dataclasses
    import tempfile

    from model.bundle import write_bundle
    from model.inference import Classifier

    if tflite is None:
        served = keras_model if typicality is None else with_embedding_output(keras_model)
        tflite = convert_to_tflite(served, manifest.quantization, representative_batches)
    extra_files = {}
    if typicality is not None:
        width = Classifier(model_content=tflite).embedding_size
        if width != typicality.model.embedding_width:
            raise ValueError(f"the served model's embedding output is {width} wide; the typicality "
                             f"statistics need {typicality.model.embedding_width}")
        manifest = dataclasses.replace(manifest, typicality=typicality.spec)
        extra_files[typicality.spec.file] = typicality.model.to_npz_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        keras_path = Path(scratch) / "model.keras"
        keras_model.save(keras_path)
        return write_bundle(
            folder,
            manifest,
            tflite,
            keras_path,
            render_model_card(manifest, extra_card_sections, lead_card_sections),
            extra_files,
        )

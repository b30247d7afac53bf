"""Screen one photo: decode, quality gate, classify, typicality check, decide, explain, render.

`Screener` holds everything loaded from a bundle (the LiteRT interpreter, the compiled heatmap
graph) and is built once per process; `Screener.screen(bytes)` is the one call the command line
uses. It never raises for bad input: refusals come back as a result with a reason. The worker
calls `screen_or_raise`, the same screen except that an internal fault raises so RQ retries it.

The typicality check (`model.typicality`) reads the embedding the classifier's call already
computed; a picture unlike the training photos is refused (`retake`, reason
`not_a_close_skin_photo`) before any verdict, so it is never escalated.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from model.bundle import Bundle, load_bundle
from model.decision import decide
from model.errors import BundleError, ImageRejected
from model.explain import Explainer, HeatmapMethod
from model.imaging import DecodeLimits, decode_image
from model.inference import Classifier
from model.preprocess import classifier_views, normalise, prepare_pixels
from model.quality import QualityThresholds, assess
from model.render import render_overlay, warm_up_legends
from model.runtime import import_tensorflow
from model.types import (
    RETAKE_REASONS,
    HeatmapLabels,
    Reason,
    ScreeningResult,
    StageTimings,
    Verdict,
)
from model.typicality import TypicalityCheck, load_check

log = logging.getLogger(__name__)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Screener:
    """A loaded model bundle, ready to screen photos."""

    def __init__(
        self,
        bundle: Bundle,
        heatmap_method: HeatmapMethod | str | None = HeatmapMethod.GRADCAM_PLUS_PLUS,
        decode_limits: DecodeLimits | None = None,
        quality: QualityThresholds | None = None,
        litert_threads: int = 1,
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.decode_limits = decode_limits or DecodeLimits()
        self.quality = quality or QualityThresholds()
        self.classifier = Classifier(bundle.tflite_path, num_threads=litert_threads)
        self.typicality = self._typicality_check(bundle, self.classifier)
        self.explainer = (
            None
            if heatmap_method is None
            else Explainer(bundle.keras_path, heatmap_method, layer=self.manifest.heatmap_layer)
        )

    @staticmethod
    def _typicality_check(bundle: Bundle, classifier: Classifier) -> TypicalityCheck | None:
        check = load_check(bundle.path, bundle.manifest.typicality)
        if check is None:
            log.warning(
                "typicality check skipped: bundle %s (schema %d) carries none, so pictures unlike "
                "its training photos get a verdict", bundle.model_id, bundle.manifest.schema_version,
            )
            return None
        if classifier.embedding_size != check.model.embedding_width:
            raise BundleError(
                f"{bundle.tflite_path} has no {check.model.embedding_width}-wide embedding output "
                f"(found {classifier.embedding_size}), which the bundle's typicality check needs"
            )
        return check

    @property
    def model_id(self) -> str:
        return self.bundle.model_id

    def warm_up(self) -> None:
        """Run every stage once so the first real photo is as fast as the rest."""
        size = self.manifest.input_size
        self.classifier.predict(np.zeros((1, size[1], size[0], 3), np.float32))
        if self.explainer is not None:
            self.explainer.warm_up()
            warm_up_legends()

    def screen(
        self, photo: bytes, with_heatmap: bool = True, labels: HeatmapLabels | None = None
    ) -> ScreeningResult:
        """Screen one photo; never raises (a fault of the service itself becomes an ERROR result).
        `labels` word the heatmap picture (its legend and verdict) in the person's language."""
        try:
            return self.screen_or_raise(photo, with_heatmap, labels)
        except Exception:  # the process must survive anything a photo does to it
            log.exception("screening failed", extra={"model_id": self.model_id})
            return ScreeningResult(
                verdict=Verdict.ERROR,
                model_id=self.model_id,
                reason=Reason.INTERNAL_ERROR,
                detail="the photo could not be screened because of an internal error",
            )

    def screen_or_raise(
        self, photo: bytes, with_heatmap: bool = True, labels: HeatmapLabels | None = None
    ) -> ScreeningResult:
        """As `screen`, but a fault of the service itself (not of the photo, which is always
        refused with a reason) raises, so that a job runner can retry it."""
        return self._screen(photo, with_heatmap, labels)

    def _refusal(self, reason: Reason, detail: str, timings: StageTimings) -> ScreeningResult:
        verdict = Verdict.RETAKE if reason in RETAKE_REASONS else Verdict.ERROR
        return ScreeningResult(
            verdict=verdict, model_id=self.model_id, reason=reason, detail=detail, timings=timings
        )

    def _atypical(self, embedding) -> str | None:
        """Why the picture is refused as unlike the training photos, or None to go on."""
        if self.typicality is None:
            return None
        score = self.typicality.score(embedding)
        if not self.typicality.refuses(score):
            return None
        spec = self.typicality.spec
        return (f"typicality check: {spec.method.value} score {score:.3f} above {spec.threshold:.3f}: "
                "not like the close skin photos the model was trained on")

    def _screen(self, photo: bytes, with_heatmap: bool, labels: HeatmapLabels | None) -> ScreeningResult:
        manifest = self.manifest
        start = time.perf_counter()
        try:
            image = decode_image(photo, self.decode_limits)
        except ImageRejected as rejected:
            return self._refusal(rejected.reason, rejected.detail, StageTimings(decode_ms=_ms_since(start)))
        decode_ms = _ms_since(start)

        start = time.perf_counter()
        report = assess(image, self.quality)
        quality_ms = _ms_since(start)
        if report.reason is not None:
            return self._refusal(
                report.reason,
                f"quality gate: {report.reason.value}",
                StageTimings(decode_ms=decode_ms, quality_ms=quality_ms),
            )

        start = time.perf_counter()
        pixels = prepare_pixels(image, manifest.input_size)
        views = normalise(classifier_views(pixels, manifest.view_averaging), manifest.normalisation)
        probabilities, embedding = self.classifier.predict_views_with_embedding(views)
        batch = views[:1]  # the photo itself, for the heatmap
        refusal = self._atypical(embedding)
        inference_ms = _ms_since(start)  # the check's few matrix products included
        if refusal is not None:
            return self._refusal(
                Reason.NOT_A_CLOSE_SKIN_PHOTO, refusal,
                StageTimings(decode_ms=decode_ms, quality_ms=quality_ms, inference_ms=inference_ms),
            )

        predicted_index = int(np.argmax(probabilities))
        positive_probability = float(probabilities[manifest.positive_index])
        verdict = decide(positive_probability, manifest.thresholds)

        heatmap_ms = render_ms = 0.0
        heatmap_jpeg = None
        if with_heatmap and self.explainer is not None:
            start = time.perf_counter()
            # Explain the class that drives the verdict: mpox for positive/inconclusive screens.
            explained = (
                manifest.positive_index if verdict is not Verdict.NEGATIVE else predicted_index
            )
            heatmap = self.explainer.explain(batch, explained)
            heatmap_ms = _ms_since(start)
            start = time.perf_counter()
            heatmap_jpeg = render_overlay(image, heatmap, verdict, labels)
            render_ms = _ms_since(start)

        return ScreeningResult(
            verdict=verdict,
            model_id=self.model_id,
            probabilities={
                name: float(p) for name, p in zip(manifest.class_names, probabilities, strict=True)
            },
            predicted_class=manifest.class_names[predicted_index],
            positive_probability=positive_probability,
            heatmap_jpeg=heatmap_jpeg,
            timings=StageTimings(
                decode_ms=decode_ms,
                quality_ms=quality_ms,
                inference_ms=inference_ms,
                heatmap_ms=heatmap_ms,
                render_ms=render_ms,
            ),
        )


def load_screener(
    bundle_path: str | Path,
    heatmap_method: HeatmapMethod | str | None = HeatmapMethod.GRADCAM_PLUS_PLUS,
    max_photo_bytes: int | None = None,
    litert_threads: int = 1,
    warm_up: bool = True,
) -> Screener:
    """Load a bundle into a Screener (and warm it up): the once-per-process step."""
    import_tensorflow()  # first, so that its start-up notes are dropped (model.runtime)
    limits = DecodeLimits(max_bytes=max_photo_bytes) if max_photo_bytes else DecodeLimits()
    screener = Screener(
        load_bundle(bundle_path),
        heatmap_method=heatmap_method,
        decode_limits=limits,
        litert_threads=litert_threads,
    )
    if warm_up:
        screener.warm_up()
    return screener

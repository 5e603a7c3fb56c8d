"""The recommendation policy: thresholds a clinic may configure (Settings), and the fixed rule constants."""

from __future__ import annotations

from dataclasses import dataclass

from service.catalog import PARAMETERS_BY_NAME, Parameter

# Below this probability a change is RECOMMENDED only when a deviation it explains is present (|z| >=
# deviation_z in a feature the effect table links to it): moderate model evidence plus a textbook
# deviation, never moderate evidence alone.
UNSUPPORTED_MIN = 0.8
# Fewer present features than this is "too little information" for any confident answer.
MIN_INFORMATIVE_FEATURES = 3
# Confidence levels of an answer's overall confidence.
HIGH_CONFIDENCE = 0.8
MEDIUM_CONFIDENCE = 0.6
# Without socket kinetics (compensated features only, Jonkergouw 2016) or outside the training inputs,
# the answer is at best of medium confidence.
CAPPED_CONFIDENCE = 0.79


@dataclass(frozen=True, slots=True)
class Policy:
    """Recommendation policy, built from Settings by the factory `from_values`.

    min_change / max_step: the smallest change with a published effect and the safe single step per
    parameter (DESIGN 3.1). min_confidence: the probability a RECOMMENDED change needs. deviation_z:
    |z| from which a feature is listed as a deviation. clear_deviation_z: |z| from which a deviation
    must be explained (DESIGN 3.3: never "no change needed" beside it; it gets a trial or a
    non-alignment finding). explain: driving features by model occlusion (one extra model call per
    present feature) instead of the effect table.
    """

    min_change: dict[Parameter, float]
    max_step: dict[Parameter, float]
    min_confidence: float = 0.7
    deviation_z: float = 2.0
    # 2.95, not 3.0: answers print z to one decimal, so a deviation shown as z = 3.0 is never left
    # unexplained (DESIGN 3.3: never "no change needed" beside |z| >= 3).
    clear_deviation_z: float = 2.95
    explain: bool = True

    @classmethod
    def default(cls) -> Policy:
        return cls(
            min_change={Parameter(n): s.min_change for n, s in PARAMETERS_BY_NAME.items()},
            max_step={Parameter(n): s.max_step for n, s in PARAMETERS_BY_NAME.items()},
        )

    @classmethod
    def from_values(
        cls,
        *,
        min_change_deg: float,
        min_change_mm: float,
        min_change_length_mm: float,
        max_step_deg: float,
        max_step_mm: float,
        min_confidence: float,
        deviation_z: float,
        explain: bool,
        clear_deviation_z: float = 2.95,
    ) -> Policy:
        mins: dict[Parameter, float] = {}
        steps: dict[Parameter, float] = {}
        for name, spec in PARAMETERS_BY_NAME.items():
            p = Parameter(name)
            if spec.unit == "deg":
                mins[p], steps[p] = min_change_deg, max_step_deg
            elif p is Parameter.PYLON_LENGTH:
                mins[p], steps[p] = min_change_length_mm, max_step_mm
            else:
                mins[p], steps[p] = min_change_mm, max_step_mm
        return cls(mins, steps, min_confidence, deviation_z, clear_deviation_z, explain)

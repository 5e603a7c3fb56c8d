"""Raw recordings -> catalog v1 gait features (DESIGN sections 3.2 and 5).

One module per sensor kind, each a pure function of arrays + sampling rate + prosthetic side that
returns an ``ExtractionResult`` (features, strides used/dropped, warnings, per-feature provenance).
Pure numpy; scipy/ezc3d are optional and imported lazily. Bad recordings raise
``service.sensors.errors.RecordingError`` subclasses carrying ``.field`` and ``.reason``.

``EXTRACTORS`` (keyed by SensorKind name) and the expected inputs:

- ``IMU`` -> ``imu.extract_imu(channels, sampling_rate_hz, prosthetic_side, acc_unit="m/s^2"|"g",
  gyro_unit="deg/s"|"rad/s", unreliable=None, foot_yaw_known=True)``: channels
  ``{left_foot,right_foot,trunk,pelvis,lower_back}_{acc,gyr}_{pa,ml,si}``, body frame x=pa forward,
  y=ml LEFT, z=si up. ``left_foot_gyr_ml`` and ``right_foot_gyr_ml`` required. Sensors with their own
  timelines (lost packets) go through ``timeline.align_groups`` first, which fills short gaps and
  returns the ``unreliable`` masks of long ones.
- ``INSTRUMENTED_PYLON`` -> ``pylon.extract_pylon(channels, sampling_rate_hz, prosthetic_side, body_mass_kg)``:
  ``axial_force_n`` (+compression) or ``fz_n``; ``moment_sagittal_nm`` (+flexion), ``moment_coronal_nm``
  (+varus) or raw ``fx_n fy_n mx_nm my_nm mz_nm`` (x anterior, y left, z up). N and N*m.
- ``PRESSURE_INSOLE`` -> ``insole.extract_insole(channels, sampling_rate_hz, prosthetic_side, body_mass_kg=None)``:
  ``{left,right}_total_n`` required, ``{left,right}_{heel,forefoot}_n`` optional. N.
- ``FORCE_PLATE`` -> ``force_plate.extract_force_plate(channels, sampling_rate_hz, prosthetic_side, body_mass_kg=None)``:
  ``{left,right}_vgrf_n`` (vertical GRF per foot, N, + up).
- ``MOTION_CAPTURE`` -> ``mocap.extract_mocap(markers, sampling_rate_hz, prosthetic_side)``: N x 3 metres per
  landmark ``{left,right}_{heel,toe,knee,ankle,hip,shoulder}``, ``sacrum``, ``c7``; lab axes auto-detected.
  Files: ``c3d.extract_c3d(path|bytes, prosthetic_side, body_mass_kg=None)`` (markers + force plates, needs
  ezc3d) and ``mocap_angles.extract_gaitkit(path|dict, prosthetic_side)`` (gaitkit JSON).
- ``VIDEO_POSE`` -> ``video_pose.extract_video_pose(keypoints, fps, prosthetic_side, layout="coco17"|"mediapipe33",
  view="sagittal"|"frontal", facing=...)``: T x K x 2|3 pixel keypoints (+confidence), image y down.
- ``OBSERVATION`` -> ``observation.extract_observation(observations, prosthetic_side)``: checklist items
  (``observation.ITEMS``) -> approximate values, LOW precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.sensors.base import (
    FEATURE_NAMES,
    ExtractionResult,
    FeatureProvenance,
    Precision,
    SensorKind,
    Side,
    asymmetry_pct,
)
from service.sensors.errors import (
    InconsistentSamplingRateError,
    InvalidValueError,
    MissingChannelError,
    MissingDependencyError,
    NoCompleteStrideError,
    RecordingError,
    RecordingTooShortError,
    SideMissingError,
    UnknownChannelError,
)
from service.sensors.force_plate import extract_force_plate
from service.sensors.imu import extract_imu
from service.sensors.insole import extract_insole
from service.sensors.mocap import extract_mocap
from service.sensors.observation import extract_observation
from service.sensors.pylon import extract_pylon
from service.sensors.video_pose import extract_video_pose

EXTRACTORS: dict[str, Callable[..., ExtractionResult]] = {
    SensorKind.INSTRUMENTED_PYLON.value: extract_pylon,
    SensorKind.IMU.value: extract_imu,
    SensorKind.PRESSURE_INSOLE.value: extract_insole,
    SensorKind.FORCE_PLATE.value: extract_force_plate,
    SensorKind.MOTION_CAPTURE.value: extract_mocap,
    SensorKind.VIDEO_POSE.value: extract_video_pose,
    SensorKind.OBSERVATION.value: extract_observation,
}

# File-format readers (not sensor kinds): C3D needs the optional ezc3d, imported on first use.
def extract_c3d(*args: Any, **kwargs: Any) -> ExtractionResult:
    from service.sensors.c3d import extract_c3d as _impl

    return _impl(*args, **kwargs)


def extract_gaitkit(*args: Any, **kwargs: Any) -> ExtractionResult:
    from service.sensors.mocap_angles import extract_gaitkit as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "EXTRACTORS",
    "FEATURE_NAMES",
    "ExtractionResult",
    "FeatureProvenance",
    "InconsistentSamplingRateError",
    "InvalidValueError",
    "MissingChannelError",
    "MissingDependencyError",
    "NoCompleteStrideError",
    "Precision",
    "RecordingError",
    "RecordingTooShortError",
    "SensorKind",
    "Side",
    "SideMissingError",
    "UnknownChannelError",
    "asymmetry_pct",
    "extract_c3d",
    "extract_force_plate",
    "extract_gaitkit",
    "extract_imu",
    "extract_insole",
    "extract_mocap",
    "extract_observation",
    "extract_pylon",
    "extract_video_pose",
]

"""The training data schema (one row per assessment) and its validating loader.

The same table shape comes from the simulator (``training.cohort``) and from clinics, so the pipeline
trains identically on both. Documented for humans in ``docs/data-schema.md``; this module is the
machine-checked version. Validation collects every problem before failing, so a clinic fixing an export
sees all of them at once, each with the column, the offending rows and the allowed values.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from service import catalog
from service.catalog import AmputationLevel, SensorKind, Side

ID_COLUMNS: tuple[str, ...] = ("patient_id", "assessment_id")
CONTEXT_COLUMNS: tuple[str, ...] = (
    "amputation_level",
    "prosthetic_side",
    "body_mass_kg",
    "height_m",
    "k_level",
    "foot_type",
    "sensor_kinds",
)
FEATURE_COLUMNS: tuple[str, ...] = catalog.FEATURE_NAMES
# Optional: the same patient's features at the alignment last accepted (the service's
# GaitAssessment.reference_features), same units and ranges; empty when there was no such walk.
REFERENCE_PREFIX = "reference_"
REFERENCE_COLUMNS: tuple[str, ...] = tuple(REFERENCE_PREFIX + name for name in catalog.FEATURE_NAMES)
CORRECTION_COLUMNS: tuple[str, ...] = tuple(f"correction_{p}" for p in catalog.PARAMETER_NAMES)
OUTCOME_COLUMNS: tuple[str, ...] = ("outcome_accepted", "outcome_comfort_0_10")
SCHEMA_COLUMNS: tuple[str, ...] = (
    ID_COLUMNS + CONTEXT_COLUMNS + FEATURE_COLUMNS + REFERENCE_COLUMNS + CORRECTION_COLUMNS + OUTCOME_COLUMNS
)
REQUIRED_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, "amputation_level", *FEATURE_COLUMNS, *CORRECTION_COLUMNS)
# Optional provenance of rows that are walks of recorded fittings (`python -m training export-records`):
# kept for audit and the model card's real-record section, never model inputs. Kept in the validated
# table only when the file has them, so tables without them (the simulator's) are unchanged.
RECOMMENDED_COLUMNS: tuple[str, ...] = tuple(f"recommended_{p}" for p in catalog.PARAMETER_NAMES)
RECORD_TEXT_COLUMNS: tuple[str, ...] = (
    "fitting_id",
    "clinic_key",
    "answer_model_name",
    "answer_model_version",
    "answer_model_sha256",
    "answer_kind",
)
RECORD_NUMERIC_COLUMNS: tuple[str, ...] = ("walk_index", *RECOMMENDED_COLUMNS, "prosthetist_rating")
RECORD_COLUMNS: tuple[str, ...] = (*RECORD_TEXT_COLUMNS, *RECORD_NUMERIC_COLUMNS)
KNOWN_COLUMNS: tuple[str, ...] = SCHEMA_COLUMNS + RECORD_COLUMNS

FOOT_TYPES: tuple[str, ...] = ("SACH", "SINGLE_AXIS", "MULTIAXIAL", "ENERGY_STORING", "MICROPROCESSOR", "OTHER")
# A correction beyond three study ranges (e.g. 36 deg foot rotation, Fridman 2003's largest) is a data
# entry error rather than an alignment change.
CORRECTION_LIMIT: dict[str, float] = {
    f"correction_{p.parameter.value}": 3.0 * p.study_range for p in catalog.PARAMETERS
}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_MAX_ROWS_SHOWN = 5


class SchemaError(ValueError):
    """The file does not follow the training data schema; ``problems`` lists every violation."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n  - ".join(problems)
        super().__init__(f"{source}: {len(problems)} schema problem(s):\n  - {shown}\nSee docs/data-schema.md.")


@dataclass(frozen=True, slots=True)
class Dataset:
    """A validated table plus where it came from."""

    frame: pd.DataFrame
    source: str
    kind: str  # "simulated" or "clinic"


def _rows(mask: pd.Series | np.ndarray) -> str:
    """Human row numbers (1-based data rows) of a boolean mask, the first few only."""
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(i + 1) for i in idx[:_MAX_ROWS_SHOWN])
    more = f" and {len(idx) - _MAX_ROWS_SHOWN} more" if len(idx) > _MAX_ROWS_SHOWN else ""
    return f"row(s) {shown}{more}"


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype("string").str.strip().fillna("").eq("")


def _parse_bool(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(parsed nullable boolean, mask of unparseable cells)."""
    txt = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[txt.isin(_TRUE).fillna(False)] = True
    out[txt.isin(_FALSE).fillna(False)] = False
    bad = ~_blank(s) & out.isna()
    return out, bad


def coerce_types(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes: strings for ids/categories, float64 for numbers (NaN = missing), boolean outcome."""
    out = df.copy()
    for c in (*ID_COLUMNS, "amputation_level", "prosthetic_side", "foot_type", "sensor_kinds"):
        if c in out.columns:
            out[c] = out[c].astype("string").str.strip()
            out.loc[out[c].eq("").fillna(False), c] = pd.NA
    numeric = ("body_mass_kg", "height_m", "k_level", "outcome_comfort_0_10", *FEATURE_COLUMNS, *REFERENCE_COLUMNS)
    for c in (*numeric, *CORRECTION_COLUMNS):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    if "outcome_accepted" in out.columns:
        out["outcome_accepted"] = _parse_bool(out["outcome_accepted"])[0]
    for c in RECORD_TEXT_COLUMNS:
        if c in out.columns:
            out[c] = out[c].astype("string").str.strip()
    for c in RECORD_NUMERIC_COLUMNS:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out


def validate(raw: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Check a raw table against the schema; return it with canonical dtypes or raise SchemaError."""
    problems: list[str] = []
    cols = [str(c) for c in raw.columns]
    unknown = [c for c in cols if c not in KNOWN_COLUMNS]
    for c in unknown:
        close = difflib.get_close_matches(c, KNOWN_COLUMNS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"unknown column '{c}'{hint}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        problems.append(f"duplicate column(s): {', '.join(dup)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if len(raw) == 0:
        problems.append("no data rows")
    if problems:
        raise SchemaError(source, problems)

    df = raw.reset_index(drop=True)
    for c in ID_COLUMNS:
        if _blank(df[c]).any():
            problems.append(f"'{c}' is empty in {_rows(_blank(df[c]))}; every row needs one")
    aid = df["assessment_id"].astype("string").str.strip()
    dups = aid.duplicated(keep=False) & ~_blank(df["assessment_id"])
    if dups.any():
        problems.append(f"'assessment_id' is not unique: {_rows(dups)} (e.g. '{aid[dups].iloc[0]}')")

    def check_enum(col: str, allowed: Iterable[str], required: bool) -> None:
        if col not in df.columns:
            return
        allowed = tuple(allowed)
        txt = df[col].astype("string").str.strip().str.upper()
        blank = _blank(df[col])
        if required and blank.any():
            problems.append(f"'{col}' is empty in {_rows(blank)}; allowed: {', '.join(allowed)}")
        bad = ~blank & ~txt.isin(allowed).fillna(False)
        if bad.any():
            problems.append(
                f"'{col}' has invalid value '{df[col][bad].iloc[0]}' in {_rows(bad)}; allowed: {', '.join(allowed)}"
            )

    check_enum("amputation_level", [lv.value for lv in AmputationLevel], required=True)
    check_enum("prosthetic_side", [s.value for s in Side], required=False)
    check_enum("foot_type", FOOT_TYPES, required=False)

    if "sensor_kinds" in df.columns:
        known = {k.value for k in SensorKind}
        for i, cell in enumerate(df["sensor_kinds"]):
            if cell is None or (isinstance(cell, float) and math.isnan(cell)) or pd.isna(cell):
                continue
            kinds = [k.strip().upper() for k in str(cell).split(";") if k.strip()]
            bad_k = [k for k in kinds if k not in known]
            if bad_k:
                problems.append(
                    f"'sensor_kinds' has unknown kind '{bad_k[0]}' in row {i + 1}; allowed (';'-separated): "
                    + ", ".join(sorted(known))
                )
                break

    def check_numeric(col: str, lo: float, hi: float, unit: str, required_value: bool = False) -> None:
        if col not in df.columns:
            return
        num = pd.to_numeric(df[col], errors="coerce")
        blank = _blank(df[col])
        nonnum = ~blank & num.isna()
        if nonnum.any():
            problems.append(f"'{col}' is not a number in {_rows(nonnum)} (e.g. '{df[col][nonnum].iloc[0]}')")
        if required_value and blank.any():
            problems.append(f"'{col}' is empty in {_rows(blank)}; write 0 when no change was applied")
        out = num.notna() & ((num < lo) | (num > hi))
        if out.any():
            problems.append(
                f"'{col}' = {num[out].iloc[0]:g} {unit} outside the valid range [{lo:g}, {hi:g}] {unit} in {_rows(out)}"
            )

    check_numeric("body_mass_kg", *catalog.BODY_MASS_KG_RANGE, "kg")
    check_numeric("height_m", *catalog.HEIGHT_M_RANGE, "m")
    check_numeric("k_level", *catalog.K_LEVEL_RANGE, "")
    if "k_level" in df.columns:
        k = pd.to_numeric(df["k_level"], errors="coerce")
        frac = k.notna() & (k != k.round())
        if frac.any():
            problems.append(f"'k_level' must be an integer 0-4 in {_rows(frac)}")
    for spec in catalog.FEATURES:
        check_numeric(spec.name, spec.min_value, spec.max_value, spec.unit)
        check_numeric(REFERENCE_PREFIX + spec.name, spec.min_value, spec.max_value, spec.unit)
    for col in CORRECTION_COLUMNS:
        lim = CORRECTION_LIMIT[col]
        unit = catalog.PARAMETERS_BY_NAME[col.removeprefix("correction_")].unit
        check_numeric(col, -lim, lim, unit, required_value=True)
    check_numeric("outcome_comfort_0_10", 0.0, 10.0, "")
    check_numeric("prosthetist_rating", 1.0, 5.0, "")
    check_numeric("walk_index", 0.0, 1e6, "")
    for col in RECOMMENDED_COLUMNS:
        lim = CORRECTION_LIMIT["correction_" + col.removeprefix("recommended_")]
        check_numeric(col, -lim, lim, catalog.PARAMETERS_BY_NAME[col.removeprefix("recommended_")].unit)
    if "outcome_accepted" in df.columns:
        _, bad = _parse_bool(df["outcome_accepted"])
        if bad.any():
            problems.append(
                f"'outcome_accepted' has invalid value '{df['outcome_accepted'][bad].iloc[0]}' in {_rows(bad)}; "
                "allowed: true/false/1/0/yes/no or empty"
            )
    if not problems:
        # A patient keeps one amputation level across assessments (a changed level is a data error).
        lv = df.groupby(df["patient_id"].astype("string").str.strip())["amputation_level"].nunique()
        if (lv > 1).any():
            problems.append(f"patient(s) with more than one amputation_level: {', '.join(lv[lv > 1].index[:5])}")
    if problems:
        raise SchemaError(source, problems)
    out = coerce_types(df)
    for c in ("amputation_level", "prosthetic_side", "foot_type"):
        if c in out.columns:
            out[c] = out[c].str.upper()
    for c in SCHEMA_COLUMNS:  # optional columns absent from the file: present but empty
        if c not in out.columns:
            out[c] = pd.NA
    return coerce_types(out[[*SCHEMA_COLUMNS, *(c for c in RECORD_COLUMNS if c in out.columns)]])


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as raw strings/values (no validation)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.exists():
        raise SchemaError(str(p), ["file not found"])
    if suffix == ".csv":
        # Everything as text first so validation can point at the exact bad cell.
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    raise SchemaError(str(p), [f"unsupported file type '{suffix}'; use .csv or .parquet"])


def load(path: str | Path, kind: str | None = None) -> Dataset:
    """Load and validate a training table. ``kind`` defaults to "simulated" for SIM patient ids."""
    frame = validate(read_table(path), str(path))
    if kind is None:
        kind = "simulated" if frame["patient_id"].str.startswith("SIM").all() else "clinic"
    return Dataset(frame=frame, source=str(path), kind=kind)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".csv":
        df.to_csv(p, index=False, float_format="%.6g", lineterminator="\n")
    else:
        df.to_parquet(p, index=False)


def training_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows usable as labels: a correction followed by a rejected outcome is not the right answer."""
    keep = df["outcome_accepted"].fillna(True).astype(bool)
    return df[keep].reset_index(drop=True)


def model_inputs(df: pd.DataFrame) -> np.ndarray:
    """The model input matrix in catalog.MODEL_INPUT_COLUMNS order (float32, NaN = missing)."""
    x = np.full((len(df), len(catalog.MODEL_INPUT_COLUMNS)), np.nan, dtype=np.float64)
    for j, name in enumerate(catalog.FEATURE_NAMES):
        x[:, j] = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    n = len(catalog.FEATURE_NAMES)
    level = df["amputation_level"].astype("string")
    x[:, n] = np.where(level.isna(), np.nan, (level == AmputationLevel.TRANSFEMORAL.value).fillna(False).astype(float))
    x[:, n + 1] = df["body_mass_kg"].to_numpy(dtype=np.float64, na_value=np.nan)
    x[:, n + 2] = df["k_level"].to_numpy(dtype=np.float64, na_value=np.nan)
    assert catalog.CONTEXT_COLUMNS == ("context_transfemoral", "context_body_mass_kg", "context_k_level")
    r0 = catalog.MODEL_INPUT_COLUMNS.index(catalog.REFERENCE_CHANGE_COLUMNS[0])
    for j, name in enumerate(REFERENCE_COLUMNS):
        # The service's change since reference: NaN unless both walks measured the feature.
        x[:, r0 + j] = x[:, j] - df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return x.astype(np.float32)


def corrections(df: pd.DataFrame) -> np.ndarray:
    """The labels: applied corrections [N, 7] in catalog.PARAMETER_NAMES order, parameter units."""
    return np.asarray(df[list(CORRECTION_COLUMNS)].to_numpy(dtype=np.float64))


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 of the table in a canonical form: schema column order, rows sorted by ids, fixed floats."""
    # Record provenance columns count when the table has them (a table without them hashes as before).
    cols = [*SCHEMA_COLUMNS, *(c for c in RECORD_COLUMNS if c in df.columns)]
    canon = df[cols].sort_values(list(ID_COLUMNS), kind="mergesort")
    buf = io.StringIO()
    canon.to_csv(buf, index=False, float_format="%.9g", na_rep="", lineterminator="\n")
    return hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()

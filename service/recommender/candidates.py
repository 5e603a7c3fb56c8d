"""Stage 2: candidate causes of each deviation, from two cited data files of the catalog.

- The rule table (catalog.cause_rules(), data/deviation_causes.csv: clinical-evidence Tables A and B):
  deviation (feature above / below its norm) -> candidate alignment fixes in the table's order, and the
  non-alignment causes to check.
- The effect table (catalog.effects(), data/alignment_effects.csv): which features a misalignment moves
  and which way, i.e. the deviations a correction would explain (its "signature").

Both are compiled here once into per-level lookups and [2F, 2P] matrices, so the batch stages can ask
"which fixes does the table name for this row's clear deviations" with one matrix product. Row index
of a signed feature: 2*feature + (sign > 0); column of a signed fix: 2*parameter + (sign > 0), both in
catalog order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.catalog import (
    FEATURE_INDEX,
    FEATURES,
    PARAMETER_NAMES,
    PARAMETERS,
    CauseRule,
    Parameter,
    cause_rules,
    effects,
)
from service.recommender.deviations import LEVELS, N_FEATURES, SD

N_PARAMS = len(PARAMETERS)
PARAM_INDEX = {Parameter(n): j for j, n in enumerate(PARAMETER_NAMES)}


def signed_row(feature: int, sign: float) -> int:
    return 2 * feature + (1 if sign > 0 else 0)


def signed_col(param: int, sign: float) -> int:
    return 2 * param + (1 if sign > 0 else 0)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One alignment fix the table names for a deviation (rows naming the same fix merged)."""

    parameter: Parameter
    param_index: int
    sign: int
    causes: tuple[str, ...]
    table_rows: str
    order: int  # position in the table (ties)


@dataclass(frozen=True, slots=True)
class DeviationCauses:
    candidates: tuple[Candidate, ...]
    other_causes: tuple[CauseRule, ...]


@dataclass(frozen=True, slots=True)
class SignatureRow:
    feature: int
    expected_sign: int  # sign of the deviation the misalignment produces
    z_per_unit: float  # |slope| / normative sd: the z one unit of misalignment moves, before gains


def _causes() -> dict[tuple[int, int, int], DeviationCauses]:
    """(level index, feature, z sign) -> the table's candidate fixes and other causes."""
    out: dict[tuple[int, int, int], DeviationCauses] = {}
    rules = cause_rules()
    for li, lvl in enumerate(LEVELS):
        keys = {(FEATURE_INDEX[r.feature], r.z_sign) for r in rules if r.applies(lvl)}
        for f, zs in keys:
            mine = [r for r in rules if r.applies(lvl) and FEATURE_INDEX[r.feature] == f and r.z_sign == zs]
            fixes: dict[tuple[Parameter, int], list[CauseRule]] = {}
            for r in mine:
                if r.parameter is not None:
                    fixes.setdefault((r.parameter, r.fix_sign), []).append(r)
            cands = tuple(
                Candidate(
                    parameter=p,
                    param_index=PARAM_INDEX[p],
                    sign=s,
                    causes=tuple(dict.fromkeys(r.cause for r in rs)),
                    table_rows="; ".join(dict.fromkeys(f"Table {r.table_row}" for r in rs)),
                    order=k,
                )
                for k, ((p, s), rs) in enumerate(fixes.items())
            )
            out[li, f, zs] = DeviationCauses(cands, tuple(r for r in mine if r.parameter is None))
    return out


CAUSES = _causes()
_NONE = DeviationCauses((), ())


def causes_of(level_index: int, feature: int, z_sign: int) -> DeviationCauses:
    return CAUSES.get((level_index, feature, z_sign), _NONE)


def _table_matrix() -> npt.NDArray[np.float64]:
    """[L, 2F, 2P]: 1 where the rule table names fix (column) for deviation (row)."""
    m = np.zeros((len(LEVELS), 2 * N_FEATURES, 2 * N_PARAMS))
    for (li, f, zs), dc in CAUSES.items():
        for c in dc.candidates:
            m[li, signed_row(f, zs), signed_col(c.param_index, c.sign)] = 1.0
    return m


def _signatures() -> dict[tuple[int, int, int], tuple[SignatureRow, ...]]:
    """(level index, parameter, fix sign) -> the deviations the misalignment this fix undoes produces."""
    out: dict[tuple[int, int, int], list[SignatureRow]] = {}
    for li, lvl in enumerate(LEVELS):
        for e in effects():
            if (e.level is not None and e.level is not lvl) or e.slope == 0.0:
                continue
            j = PARAM_INDEX[e.parameter]
            f = FEATURE_INDEX[e.feature]
            for fix in (-1, 1):
                expected = float(np.sign(e.shift(float(-fix))))
                rows = out.setdefault((li, j, fix), [])
                if expected != 0.0 and all(r.feature != f for r in rows):
                    rows.append(SignatureRow(f, int(expected), abs(e.slope) / float(SD[li, f])))
    return {k: tuple(v) for k, v in out.items()}


SIGNATURES = _signatures()


def signature(level_index: int, param_index: int, fix_sign: int) -> tuple[SignatureRow, ...]:
    return SIGNATURES.get((level_index, param_index, fix_sign), ())


def _support_matrix() -> npt.NDArray[np.float64]:
    """[L, 2F, 2P]: 1 where the fix (column) would explain the deviation (row), by the effect table."""
    m = np.zeros((len(LEVELS), 2 * N_FEATURES, 2 * N_PARAMS))
    for (li, j, fix), rows in SIGNATURES.items():
        for r in rows:
            m[li, signed_row(r.feature, r.expected_sign), signed_col(j, fix)] = 1.0
    return m


TABLE = _table_matrix()
SUPPORT = _support_matrix()


def signed_deviations(mask: npt.NDArray[np.bool_], z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """[n, 2F] 0/1: the masked deviations as signed rows."""
    out = np.zeros((mask.shape[0], 2 * N_FEATURES))
    out[:, 0::2] = mask & (z < 0)
    out[:, 1::2] = mask & (z > 0)
    return out


def per_level_product(signed: npt.NDArray[np.float64], level_index: npt.NDArray[np.intp], matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """[n, 2P]: signed deviations times the level's matrix (counts of table / support hits per fix)."""
    out = np.empty((signed.shape[0], matrix.shape[2]))
    for li in range(len(LEVELS)):
        rows = level_index == li
        if rows.any():
            out[rows] = signed[rows] @ matrix[li]
    return out


assert len(FEATURES) == N_FEATURES

"""Summarize a py-spy `--format raw` profile of the service: what dominates a request.

Each line of the raw output is `frame;frame;...;leaf count`. Samples whose leaf is a thread waiting
for work (the thread pool's queue, grpc's condition variable) are idle and left out; every other
sample goes to the first category below whose marker appears anywhere in its stack.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

# Waiting for work: the pool's queue, grpc's condition variable, and grpc's completion-queue poller
# (_serve blocks in C inside cq.poll; its real CPU is small next to the handlers').
IDLE_LEAVES = ("Condition.wait", "_worker (concurrent/futures/thread.py:81)", "Event.wait", "Thread.join",
               "_serve (grpc/_server.py", "select", "poll")

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model, occlusion for driving features (recommender._occlude -> onnxruntime)", ("_occlude (service/recommender.py", "Recommender._drivers")),
    ("model, main prediction (onnxruntime Session.run)", ("Session.run", "predict_model_order")),
    ("recommender: ranking, deviations, findings, suggestions (without the model)", ("Recommender.recommend", "Recommender._one")),
    ("validation (service/validation.py)", ("validate_assessment",)),
    ("request conversion proto -> domain (convert.assessment_from_proto)", ("assessment_from_proto",)),
    ("response building domain -> proto (convert.recommendation_to_proto)", ("recommendation_to_proto",)),
    ("metrics (prometheus_client)", ("service/api/metrics.py", "prometheus_client")),
    ("logging", ("logging/__init__.py", "service/logs.py")),
    ("servicer glue (service/api/servicer.py, other)", ("service/api/servicer.py",)),
    ("interceptors / auth", ("service/api/auth.py", "intercept")),
)
OTHER = "gRPC Python framework (request/response (de)serialization, status, thread pool)"


def _parse(path: Path) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append((stack.split(";"), int(count)))
    return out


def _is_idle(frames: list[str]) -> bool:
    leaf = frames[-1]
    return any(leaf.startswith(i) or i in leaf for i in IDLE_LEAVES)


def categorize(path: Path) -> tuple[Counter[str], Counter[str], int]:
    cats: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    idle = 0
    for frames, n in _parse(path):
        if _is_idle(frames):
            idle += n
            continue
        joined = ";".join(frames)
        for name, markers in CATEGORIES:
            if any(m in joined for m in markers):
                cats[name] += n
                break
        else:
            cats[OTHER] += n
        leaves[frames[-1]] += n
    return cats, leaves, idle


def summarize(path: Path, label: str = "") -> str:
    cats, leaves, idle = categorize(path)
    active = sum(cats.values())
    if not active:
        return "profile: no active samples"
    lines = [f"### Profile: {label} (py-spy, 1 worker, c=16; {active} busy samples, {idle} idle samples left out)", "", "| where | share of busy Python time |", "|---|---|"]
    for name, n in cats.most_common():
        lines.append(f"| {name} | {100 * n / active:.1f}% |")
    lines.append("")
    lines.append("Top leaf frames (self time): " + "; ".join(f"{leaf} {100 * n / active:.1f}%" for leaf, n in leaves.most_common(8)))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summarize(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))

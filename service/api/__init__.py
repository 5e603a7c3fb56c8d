"""The gRPC edge: convert (proto <-> domain), servicer, errors (status mapping), server."""

import os

# numpy's OpenBLAS starts a thread per core for matrix products and its idle threads busy-wait
# (sched_yield) after each one. The recommender's batch rules use small products ([n, 29] @ [29, k]),
# so in a serving process those threads burned a third of the CPU of a 1000-assessment batch and
# competed with the other worker and the model for the two cores (measured: 145 -> 86 server
# CPU-us per assessment, one RecommendAdjustments ~700 -> ~640 CPU-us). Concurrency comes from worker
# processes, not BLAS threads. Set before numpy is first imported (`python -m service` imports the
# edge before anything that loads numpy); an operator's own value wins. The products sum exact
# small integers, so results do not depend on it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

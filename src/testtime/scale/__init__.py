"""testtime.scale: importing this package registers every built-in strategy."""

from testtime.scale import beam as _beam  # noqa: F401
from testtime.scale import best_of_n as _best_of_n  # noqa: F401
from testtime.scale import budget_forcing as _budget_forcing  # noqa: F401
from testtime.scale import compute_optimal as _compute_optimal  # noqa: F401
from testtime.scale import config_search as _config_search  # noqa: F401
from testtime.scale import dvts as _dvts  # noqa: F401
from testtime.scale import dynamic_experts as _dynamic_experts  # noqa: F401
from testtime.scale import ffs as _ffs  # noqa: F401
from testtime.scale import greedy as _greedy  # noqa: F401
from testtime.scale import iterative_deepening as _iterative_deepening  # noqa: F401
from testtime.scale import majority as _majority  # noqa: F401
from testtime.scale import mcts as _mcts  # noqa: F401
from testtime.scale import qalign as _qalign  # noqa: F401
from testtime.scale import r2_mcts as _r2_mcts  # noqa: F401
from testtime.scale import rpc as _rpc  # noqa: F401
from testtime.scale import sample as _sample  # noqa: F401
from testtime.scale import self_refine as _self_refine  # noqa: F401
from testtime.scale import weighted_majority as _weighted_majority  # noqa: F401
from testtime.scale.base import STRATEGIES, Strategy, get_strategy

__all__ = ["STRATEGIES", "Strategy", "get_strategy"]

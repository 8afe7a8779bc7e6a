"""Growth against fixed widths on the same data: the comparison users judge growml by.

``compare`` trains, for each seed and on the one split it makes, the growing run and a
fixed-width network per width (and optionally scikit-learn's MLP), in parallel and resumably,
and returns one row per configuration with a verdict in words.
"""

from growml.compare.members import Member, parse_widths, plan
from growml.compare.summary import TOLERANCE, summarise, verdict
from growml.compare.sweep import DEFAULT_WIDTHS, Comparison, compare, read_comparison

__all__ = [
    "DEFAULT_WIDTHS",
    "TOLERANCE",
    "Comparison",
    "Member",
    "compare",
    "parse_widths",
    "plan",
    "read_comparison",
    "summarise",
    "verdict",
]

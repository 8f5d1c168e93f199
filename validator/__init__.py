"""Judge one submission: formats, loading, rules, compute accounting, reports.

Never imports `leaderboard`.
"""

__version__ = "0.1.0"

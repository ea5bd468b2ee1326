"""SafeServe: the logic behind the workbook that reproduces "Safe to Serve" (arXiv 2412.00074).

Notebooks narrate; every training loop, metric and parser lives in this package so tests can reach it.
"""

__version__ = "0.1.0"

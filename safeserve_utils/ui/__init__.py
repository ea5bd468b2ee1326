"""What the notebooks show: text tables and figures (``plots``, every notebook) and the interactive probe
(``probe``, notebook ``07_probe``). Kept apart from the logic they display, which the rest of the
package holds.
"""

from . import plots, probe

__all__ = ["plots", "probe"]

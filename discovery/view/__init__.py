"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script.

Hand-written SVG rather than a charting library inlined (Vega-Lite with vega and vega-embed is
~800 kB per page and a runtime to keep working): a page is a few tens of kB, renders in any
browser or mail client without script, prints, and will still open in twenty years. Hover
details are native `title` tooltips.
"""

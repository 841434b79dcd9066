"""Studies that run simulations and return figures: one step (`step`), several policies side
by side (`compare`), one setting over a list of values (`sweep`), and what would change a run
(`explain`). Renderers turn their records into words and pictures."""

"""Pictures the notebooks draw, one module per notebook (matplotlib is imported inside the functions)."""

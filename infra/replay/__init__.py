"""``tollgate replay``: recorded requests sent again to other variants, and compared."""

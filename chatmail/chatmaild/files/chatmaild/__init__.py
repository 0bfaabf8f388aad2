"""chatmaild: the Python services of a chatmail relay (shipped by the Salt formula)."""

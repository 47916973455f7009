"""One package per transfer-HPO method; every catalog method speaks the ask/tell protocol."""

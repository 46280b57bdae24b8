"""gradcheck: a reusable finite-difference gradient checker, and the project's suite.

    from gradcheck import check_layer, check_gradients, format_table
    results = check_layer(layernorm_forward, layernorm_backward, {"x": x, "gamma": g, "beta": b}, "layernorm")
    print(format_table(results))
"""
from .checker import (EPS, MAX_COORDS, TOLERANCE, CheckResult, check_gradients, check_layer,
                      format_table, numeric_grad_at, relative_error)

__all__ = ["EPS", "MAX_COORDS", "TOLERANCE", "CheckResult", "check_gradients", "check_layer",
           "format_table", "numeric_grad_at", "relative_error"]

# One module per board: data plus a small factory (make_hal). The one place a platform is chosen.

cw_fuzz_target(ofp_decode LIBS cw_ofp)

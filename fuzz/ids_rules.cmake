cw_fuzz_target(ids_rules LIBS cw_ids cw_packet)

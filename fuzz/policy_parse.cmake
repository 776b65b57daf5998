cw_fuzz_target(policy_parse LIBS cw_policy)

cw_fuzz_target(vpn_config LIBS cw_env)

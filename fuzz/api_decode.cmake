cw_fuzz_target(api_decode LIBS cw_api)

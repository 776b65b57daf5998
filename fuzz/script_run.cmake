cw_fuzz_target(script_run LIBS cw_script)

cw_fuzz_target(netdev_json LIBS cw_netdev)

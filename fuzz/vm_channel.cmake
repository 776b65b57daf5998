cw_fuzz_target(vm_channel LIBS cw_vm)

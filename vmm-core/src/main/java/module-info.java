/** Kindling's core: the Linux system-call layer, guest memory, buses, interrupts, the machine and x86 boot. */
module dev.kindling.core {
    exports dev.kindling.sys;
    exports dev.kindling.memory;
    exports dev.kindling.device;
    exports dev.kindling.irq;
    exports dev.kindling.bus;
    exports dev.kindling.machine;
    exports dev.kindling.boot;
    exports dev.kindling.fdt;
    exports dev.kindling.snapshot;
}

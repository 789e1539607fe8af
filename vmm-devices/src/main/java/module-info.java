/** Kindling's device models and the microvm machine built from them. */
module dev.kindling.devices {
    requires transitive dev.kindling.core;
    requires transitive dev.kindling.kvm;
    requires com.fasterxml.jackson.databind;
    // the JUnit extension and AssertJ assertions (dev.kindling.junit): only for programs that use them
    requires static org.junit.jupiter.api;
    requires static org.assertj.core;

    exports dev.kindling.devices.ivshmem;
    exports dev.kindling.devices.legacy;
    exports dev.kindling.devices.pci;
    exports dev.kindling.devices.vfio;
    exports dev.kindling.devices.virtio;
    exports dev.kindling.devices.virtio.blk;
    exports dev.kindling.devices.virtio.console;
    exports dev.kindling.devices.virtio.mmio;
    exports dev.kindling.devices.virtio.net;
    exports dev.kindling.devices.virtio.queue;
    exports dev.kindling.devices.virtio.rng;
    exports dev.kindling.devices.virtio.vsock;
    exports dev.kindling.microvm;
    exports dev.kindling.sandbox;
    exports dev.kindling.junit;

    opens dev.kindling.microvm to com.fasterxml.jackson.databind;
}

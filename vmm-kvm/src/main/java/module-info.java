/**
 * Kindling's kernel bindings: thin, safe wrappers over the /dev/kvm ioctls, in the spirit of rust-vmm's
 * kvm-ioctls, and over VFIO's.
 */
module dev.kindling.kvm {
    requires transitive dev.kindling.core;

    exports dev.kindling.kvm;
    exports dev.kindling.kvm.platform;
    exports dev.kindling.vfio;
}

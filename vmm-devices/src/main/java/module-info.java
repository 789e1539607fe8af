/** Kindling's device models. */
module dev.kindling.devices {
    requires transitive dev.kindling.core;
    // "requires transitive dev.kindling.kvm;" belongs here once vmm-kvm has a module-info (it is still empty)
    exports dev.kindling.devices.legacy;
}

/** Kindling's device models. */
module dev.kindling.devices {
    requires transitive dev.kindling.core;
    exports dev.kindling.devices.legacy;
}

/** Kindling's examples and the {@code kindling} command line. */
module dev.kindling.examples {
    requires dev.kindling.devices;
}

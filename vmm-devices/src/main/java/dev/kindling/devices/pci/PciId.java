package dev.kindling.devices.pci;

/**
 * What a function's configuration header says it is.
 *
 * @param classCode the 24-bit class code: base class, sub-class and programming interface
 */
public record PciId(int vendorId, int deviceId, int classCode, int revision, int subsystemVendorId, int subsystemId) {
    public PciId {
        check("vendor id", vendorId, 0xffff);
        check("device id", deviceId, 0xffff);
        check("class code", classCode, 0xff_ffff);
        check("revision", revision, 0xff);
        check("subsystem vendor id", subsystemVendorId, 0xffff);
        check("subsystem id", subsystemId, 0xffff);
        if (vendorId == 0xffff) {
            throw new IllegalArgumentException("vendor id 0xffff means no function");
        }
    }

    private static void check(String what, int value, int max) {
        if (value < 0 || value > max) {
            throw new IllegalArgumentException(what + " 0x" + Integer.toHexString(value) + " is above 0x" + Integer.toHexString(max));
        }
    }
}

package dev.kindling.devices.legacy;

import dev.kindling.bus.BusRange;
import dev.kindling.device.Device;
import java.util.List;

/**
 * A device model that knows where it sits on its bus. Each range carries the {@link Device}
 * to register there, so a machine wires a model with
 * {@code for (BusRange r : model.busRanges()) bus.register(r.base(), r.length(), r.device());}.
 * The class comment of each model says whether the ranges belong on the port-I/O or the MMIO bus.
 */
public interface BusMapped {
    /** The model's windows at their standard PC addresses. */
    List<BusRange> busRanges();
}

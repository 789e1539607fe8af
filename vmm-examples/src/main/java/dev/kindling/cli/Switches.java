package dev.kindling.cli;

import dev.kindling.devices.virtio.net.NetSwitch;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The in-process switches of one {@code kindling run}, one per name ({@code --net switch=NAME} and the
 * JSON {@code "switch"}), made when first named and closed when the run ends, after its VM.
 */
final class Switches implements AutoCloseable {
    private final Map<String, NetSwitch> byName = new LinkedHashMap<>();

    NetSwitch get(String name) {
        return byName.computeIfAbsent(name, NetSwitch::new);
    }

    @Override
    public void close() {
        RuntimeException failure = null;
        for (NetSwitch s : byName.values()) {
            try {
                s.close();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        byName.clear();
        if (failure != null) {
            throw failure;
        }
    }
}

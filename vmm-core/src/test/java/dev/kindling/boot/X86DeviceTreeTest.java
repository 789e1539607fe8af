package dev.kindling.boot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.kindling.testing.Dtc;
import java.util.List;
import org.junit.jupiter.api.Test;

class X86DeviceTreeTest {
    private static X86DeviceTree.PlatformDevice device(String compatible, long at) {
        return new X86DeviceTree.PlatformDevice(List.of(compatible, "generic"),
                List.of(new AddressRange(at, 0x1000), new AddressRange(at + 0x1000, 0x2000)),
                List.of(new X86DeviceTree.Interrupt(20, true), new X86DeviceTree.Interrupt(21, false)));
    }

    @Test
    void describesTheIoapicAndEachDeviceAsLinuxReadsThem() throws Exception {
        byte[] blob = X86DeviceTree.build(List.of(device("vendor,model-x", 0xb000_0000L),
                new X86DeviceTree.PlatformDevice(List.of("acme,nirq"), List.of(new AddressRange(0xb010_0000L, 0x100)),
                        List.of())));
        assertThat(Dtc.decompile(blob)).isEqualTo("""
                /dts-v1/;

                / {
                	compatible = "kindling,microvm";
                	#address-cells = <0x02>;
                	#size-cells = <0x02>;

                	interrupt-controllers {
                		#address-cells = <0x02>;
                		#size-cells = <0x02>;
                		ranges;

                		interrupt-controller@fec00000 {
                			compatible = "intel,ce4100-ioapic";
                			reg = <0x00 0xfec00000 0x00 0x1000>;
                			interrupt-controller;
                			#interrupt-cells = <0x02>;
                			#address-cells = <0x00>;
                			phandle = <0x01>;
                		};
                	};

                	model-x@b0000000 {
                		compatible = "vendor,model-x\\0generic";
                		reg = <0x00 0xb0000000 0x00 0x1000 0x00 0xb0001000 0x00 0x2000>;
                		interrupt-parent = <0x01>;
                		interrupts = <0x14 0x01 0x15 0x03>;
                	};

                	nirq@b0100000 {
                		compatible = "acme,nirq";
                		reg = <0x00 0xb0100000 0x00 0x100>;
                	};
                };
                """);
    }

    @Test
    void nodeNamesComeFromTheCompatibleAndTheFirstRegion() {
        assertThat(device("vendor,model", 0xb000_0000L).nodeName()).isEqualTo("model@b0000000");
        assertThat(device("plain", 0xc000_1000L).nodeName()).isEqualTo("plain@c0001000");
        assertThat(device("v,9lives", 0xb000_0000L).nodeName()).isEqualTo("device-9lives@b0000000");
        assertThat(device("v,a b/c", 0xb000_0000L).nodeName()).isEqualTo("a-b-c@b0000000");
        assertThat(device("v," + "x".repeat(40), 0xb000_0000L).nodeName()).isEqualTo("x".repeat(31) + "@b0000000");
    }

    @Test
    void badDevicesAreRefusedWithTheReason() {
        assertThatThrownBy(() -> new X86DeviceTree.Interrupt(24, true)).hasMessageContaining("GSI 24");
        assertThatThrownBy(() -> new X86DeviceTree.PlatformDevice(List.of(), List.of(new AddressRange(0, 1)), List.of()))
                .hasMessageContaining("compatible");
        assertThatThrownBy(() -> new X86DeviceTree.PlatformDevice(List.of("a,b"), List.of(), List.of()))
                .hasMessageContaining("no region");
        assertThatThrownBy(() -> X86DeviceTree.build(List.of(device("a,b", 0xb000_0000L), device("c,b", 0xb000_0000L))))
                .hasMessageContaining("two platform devices named b@b0000000");
    }
}

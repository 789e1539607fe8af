package dev.kindling.vfio;

import static org.assertj.core.api.Assertions.assertThat;

import dev.kindling.sys.Ioctl;
import dev.kindling.testing.HeaderCheck;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Checks every layout, ioctl number and constant of the VFIO binding against the installed {@code <linux/vfio.h>}. */
class VfioHeaderLayoutTest {
    private static HeaderCheck check;

    @BeforeAll
    static void compileAndRun() throws Exception {
        Map<String, Long> macros = new LinkedHashMap<>();
        for (Ioctl ioctl : VfioIoctls.all()) {
            macros.put(ioctl.name(), ioctl.number());
        }
        macros.putAll(VfioConstants.all());
        check = HeaderCheck.run(Path.of("target", "vfio-header-check"), "linux/vfio.h", VfioStructs.all(), macros);
    }

    @Test
    void everyStructSizeAlignmentAndMemberMatchesTheHeader() {
        assertThat(check.declared(false)).containsKeys("vfio_region_info.offset", "vfio_irq_set.data",
                "vfio_region_info_cap_sparse_mmap.areas[0].size");
        assertThat(check.mismatches(false)).isEmpty();
    }

    @Test
    void everyIoctlAndConstantMatchesTheHeader() {
        assertThat(check.declared(true)).containsKeys("VFIO_DEVICE_SET_IRQS", "VFIO_IRQ_SET_ACTION_UNMASK");
        assertThat(check.mismatches(true)).isEmpty();
    }
}

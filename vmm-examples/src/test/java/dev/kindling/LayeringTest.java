package dev.kindling;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The layering of the modules, checked over their sources (imports, and names written out in code
 * or comments): vmm-core knows neither the KVM binding nor the devices; the KVM binding knows no
 * devices; device models know no KVM binding and no machine assembly, so they stay testable without
 * a VM. Only the machine assembly ({@code dev.kindling.microvm}) ties the models to KVM. Maven's
 * module graph keeps some of this too, but only until someone adds a dependency.
 */
class LayeringTest {
    /** Sources under {@code tree} (relative to the repository) must not name package {@code forbidden}. */
    record Rule(String tree, String forbidden, String why) {
        private Pattern pattern() {
            return Pattern.compile("\\b" + Pattern.quote(forbidden) + "\\b(?![\\w$])");
        }
    }

    static final List<Rule> RULES = List.of(
            new Rule("vmm-core/src", "dev.kindling.kvm", "vmm-core runs any Platform and knows no hypervisor"),
            new Rule("vmm-core/src", "dev.kindling.devices", "vmm-core knows no device model"),
            new Rule("vmm-core/src", "dev.kindling.microvm", "vmm-core knows no machine assembly"),
            new Rule("vmm-kvm/src", "dev.kindling.devices", "the KVM binding knows no device model"),
            new Rule("vmm-kvm/src", "dev.kindling.microvm", "the KVM binding knows no machine assembly"),
            new Rule("vmm-devices/src/main/java/dev/kindling/devices", "dev.kindling.kvm",
                    "device models know nothing of KVM: only dev.kindling.microvm binds them to it"),
            new Rule("vmm-devices/src/test/java/dev/kindling/devices", "dev.kindling.kvm",
                    "device models are tested without a VM"),
            new Rule("vmm-devices/src/main/java/dev/kindling/devices", "dev.kindling.microvm",
                    "device models do not depend on the machine built from them"),
            new Rule("vmm-devices/src/test/java/dev/kindling/devices", "dev.kindling.microvm",
                    "device models are tested without the machine built from them"));

    @Test
    void modulesAndPackagesKeepTheirLayers() {
        Path root = repositoryRoot();
        for (Rule rule : RULES) {
            assertThat(root.resolve(rule.tree())).as(rule.tree()).isDirectory();
        }
        assertThat(javaFiles(root.resolve("vmm-devices/src/main/java/dev/kindling/devices"))).isNotEmpty();
        assertThat(violations(root, RULES)).isEmpty();
    }

    @Test
    void anImportAcrossALayerIsFound(@TempDir Path root) throws IOException {
        Path model = root.resolve("vmm-devices/src/main/java/dev/kindling/devices/legacy/Model.java");
        Path core = root.resolve("vmm-core/src/main/java/dev/kindling/machine/Thing.java");
        Path assembly = root.resolve("vmm-devices/src/main/java/dev/kindling/microvm/Assembly.java");
        for (Path p : List.of(model, core, assembly)) {
            Files.createDirectories(p.getParent());
        }
        Files.writeString(model, "package dev.kindling.devices.legacy;\n\nimport dev.kindling.kvm.Vm;\n");
        Files.writeString(core, "package dev.kindling.machine;\n\nclass Thing {\n    dev.kindling.devices.legacy.Model m;\n}\n");
        Files.writeString(assembly, "package dev.kindling.microvm;\n\nimport dev.kindling.kvm.Vm;\n");
        assertThat(violations(root, RULES)).containsExactlyInAnyOrder(
                "vmm-core/src/main/java/dev/kindling/machine/Thing.java:4 names dev.kindling.devices"
                        + " (vmm-core knows no device model)",
                "vmm-devices/src/main/java/dev/kindling/devices/legacy/Model.java:3 names dev.kindling.kvm"
                        + " (device models know nothing of KVM: only dev.kindling.microvm binds them to it)");
    }

    /** Every line that breaks a rule, as {@code path:line names package (why)}. */
    static List<String> violations(Path root, List<Rule> rules) {
        List<String> found = new ArrayList<>();
        for (Rule rule : rules) {
            Pattern p = rule.pattern();
            for (Path file : javaFiles(root.resolve(rule.tree()))) {
                List<String> lines = readLines(file);
                for (int i = 0; i < lines.size(); i++) {
                    if (p.matcher(lines.get(i)).find()) {
                        found.add(root.relativize(file) + ":" + (i + 1) + " names " + rule.forbidden() + " (" + rule.why() + ")");
                    }
                }
            }
        }
        return found;
    }

    private static List<Path> javaFiles(Path tree) {
        if (!Files.isDirectory(tree)) {
            return List.of();
        }
        try (Stream<Path> s = Files.walk(tree)) {
            return s.filter(f -> f.toString().endsWith(".java")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static List<String> readLines(Path file) {
        try {
            return Files.readAllLines(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** {@code kindling.root} as Maven sets it, else the directory above this module. */
    private static Path repositoryRoot() {
        String root = System.getProperty("kindling.root", System.getenv("KINDLING_ROOT"));
        Path dir = root != null && !root.isBlank() ? Path.of(root) : Path.of("").toAbsolutePath().getParent();
        assertThat(dir.resolve("vmm-core/src")).as("the repository root (kindling.root)").isDirectory();
        return dir;
    }
}

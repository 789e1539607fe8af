package dev.kindling.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code ```java} block of README.md compiles against this module's test class path, so the
 * README cannot drift from the API. A block is a method body (the default), with the imports of
 * {@link #IMPORTS}; an HTML comment on the line before it may say otherwise:
 * <ul>
 *   <li>{@code <!-- java: unit -->}: a complete compilation unit (its own imports; one top-level type);
 *   <li>{@code <!-- java: body; given: DECLARATIONS -->}: a method body, with DECLARATIONS (helper types
 *       or fields the block uses, hidden in the rendered README) added to the class around it.
 * </ul>
 * A block that does not compile fails the test with its README line and the compiler's message.
 */
class ReadmeSnippetsTest {
    /** The imports of a body block: what the README's snippets use without saying so. */
    static final List<String> IMPORTS = List.of(
            "java.io.IOException", "java.io.InputStream", "java.io.OutputStream",
            "java.nio.file.Files", "java.nio.file.Path", "java.time.Duration", "java.util.List", "java.util.Map",
            "dev.kindling.device.*", "dev.kindling.machine.*", "dev.kindling.microvm.*", "dev.kindling.sandbox.*",
            "dev.kindling.devices.virtio.vsock.*", "dev.kindling.devices.virtio.net.*", "dev.kindling.devices.ivshmem.*",
            "dev.kindling.devices.vfio.*");

    private static final Pattern FENCE = Pattern.compile("^```java\\s*$");
    private static final Pattern MARKER = Pattern.compile("^<!--\\s*java:\\s*(body|unit)\\s*(?:;\\s*given:(.*))?-->\\s*$",
            Pattern.DOTALL);

    /** One {@code ```java} block: where its code starts (1-based README line), how to wrap it, its text. */
    record Block(int line, String mode, String given, String code) {}

    @TempDir
    Path out;

    @Test
    void everyJavaBlockOfTheReadmeCompiles() throws IOException {
        List<Block> blocks = blocks(Files.readAllLines(readme(), StandardCharsets.UTF_8));
        assertThat(blocks).as("```java blocks in README.md").hasSizeGreaterThanOrEqualTo(7);
        List<String> failures = new ArrayList<>();
        for (Block b : blocks) {
            compile(b).ifPresent(failures::add);
        }
        assertThat(failures).as("README.md blocks that do not compile").isEmpty();
    }

    @Test
    void aBrokenBlockIsReportedWithItsLineAndTheCompilersMessage() throws IOException {
        List<Block> blocks = blocks(List.of(
                "text", "", "```java", "Path p = Path.of(\"x\");", "int n = p;", "```",
                "<!-- java: body; given: record Pair(int a, int b) {} -->", "```java", "int s = new Pair(1, 2).a();", "```",
                "<!-- java: unit -->", "```java", "class Whole { void f() { undefined(); } }", "```"));
        assertThat(blocks).extracting(Block::line, Block::mode).containsExactly(
                org.assertj.core.groups.Tuple.tuple(4, "body"), org.assertj.core.groups.Tuple.tuple(9, "body"),
                org.assertj.core.groups.Tuple.tuple(13, "unit"));
        assertThat(compile(blocks.get(0))).hasValueSatisfying(m -> assertThat(m)
                .startsWith("README.md:5: ").contains("incompatible types"));
        assertThat(compile(blocks.get(1))).isEmpty();
        assertThat(compile(blocks.get(2))).hasValueSatisfying(m -> assertThat(m)
                .startsWith("README.md:13: ").contains("undefined"));
    }

    static Path readme() {
        String root = System.getProperty("kindling.root", "");
        Path dir = root.isEmpty() ? Path.of("").toAbsolutePath() : Path.of(root);
        while (dir != null && !Files.isRegularFile(dir.resolve("README.md"))) {
            dir = dir.getParent();
        }
        assertThat(dir).as("a directory with README.md above the working directory").isNotNull();
        return dir.resolve("README.md");
    }

    /** The {@code ```java} blocks of a Markdown text, each with the marker on the line before it, if any. */
    static List<Block> blocks(List<String> lines) {
        List<Block> blocks = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (!FENCE.matcher(lines.get(i)).matches()) {
                continue;
            }
            String mode = "body", given = "";
            if (i > 0 && lines.get(i - 1).startsWith("<!--")) {
                Matcher m = MARKER.matcher(lines.get(i - 1));
                if (!m.matches()) {
                    throw new IllegalArgumentException("README.md:" + i + ": a comment before a ```java block must be"
                            + " <!-- java: body --> , <!-- java: unit --> or <!-- java: body; given: DECLARATIONS -->");
                }
                mode = m.group(1);
                given = m.group(2) == null ? "" : m.group(2).strip();
            }
            int start = i + 1;
            StringBuilder code = new StringBuilder();
            for (i = start; i < lines.size() && !lines.get(i).startsWith("```"); i++) {
                code.append(lines.get(i)).append('\n');
            }
            if (i == lines.size()) {
                throw new IllegalArgumentException("README.md:" + start + ": a ```java block that never ends");
            }
            blocks.add(new Block(start + 1, mode, given, code.toString()));
        }
        return blocks;
    }

    /** The source of a block and the README line of the code's first line in it. */
    private static String source(Block b, String className) {
        if (b.mode().equals("unit")) {
            return b.code();
        }
        StringBuilder s = new StringBuilder();
        for (String i : IMPORTS) {
            s.append("import ").append(i).append(';');
        }
        s.append("class ").append(className).append(" { ").append(b.given())
                .append(" void snippet() throws Exception {\n").append(b.code()).append("}}\n");
        return s.toString();
    }

    /** Compiles one block; the failure message, or empty when it compiles. */
    java.util.Optional<String> compile(Block b) throws IOException {
        String className = b.mode().equals("unit") ? unitName(b) : "ReadmeLine" + b.line();
        String src = source(b, className);
        // a body's code starts on the wrapper's second line, a unit's on its first
        int offset = b.mode().equals("unit") ? b.line() - 1 : b.line() - 2;
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        JavaFileObject file = new SimpleJavaFileObject(URI.create("string:///" + className + ".java"), JavaFileObject.Kind.SOURCE) {
            @Override
            public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                return src;
            }
        };
        Path classes = Files.createDirectories(out.resolve(className));
        List<String> options = List.of("--release", "22", "-proc:none", "-implicit:none", "-d", classes.toString(),
                "-cp", testClassPath());
        boolean ok = javac.getTask(null, null, diagnostics, options, null, List.of(file)).call();
        if (ok) {
            return java.util.Optional.empty();
        }
        StringBuilder msg = new StringBuilder();
        for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
            if (d.getKind() == Diagnostic.Kind.ERROR) {
                msg.append(msg.isEmpty() ? "" : "\n").append("README.md:").append(Math.max(b.line(), d.getLineNumber() + offset))
                        .append(": ").append(d.getMessage(Locale.ROOT));
            }
        }
        return java.util.Optional.of(msg.toString());
    }

    /** A unit block's file name: its first top-level class, interface, record or enum. */
    private static String unitName(Block b) {
        Matcher m = Pattern.compile("(?m)^(?:public\\s+|final\\s+|abstract\\s+)*(?:class|interface|record|enum)\\s+(\\w+)")
                .matcher(b.code());
        if (!m.find()) {
            throw new IllegalArgumentException("README.md:" + b.line() + ": a <!-- java: unit --> block declares no top-level type");
        }
        return m.group(1);
    }

    /**
     * This JVM's class path: Surefire starts tests from a jar whose manifest holds the real class path,
     * so its entries count too.
     */
    static String testClassPath() throws IOException {
        List<String> entries = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            entries.add(e);
            if (e.endsWith(".jar") && Files.isRegularFile(Path.of(e))) {
                try (JarFile jar = new JarFile(e)) {
                    Manifest mf = jar.getManifest();
                    String cp = mf == null ? null : mf.getMainAttributes().getValue("Class-Path");
                    if (cp != null) {
                        for (String u : cp.trim().split("\\s+")) {
                            entries.add(Path.of(URI.create(u.startsWith("file:") ? u : Path.of(e).getParent().toUri().resolve(u).toString())).toString());
                        }
                    }
                }
            }
        }
        return String.join(File.pathSeparator, entries);
    }
}

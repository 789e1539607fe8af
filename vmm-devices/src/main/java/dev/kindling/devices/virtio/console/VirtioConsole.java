package dev.kindling.devices.virtio.console;

import dev.kindling.devices.virtio.VirtioContext;
import dev.kindling.devices.virtio.VirtioDevice;
import dev.kindling.devices.virtio.VirtioIds;
import dev.kindling.devices.virtio.VirtioWorker;
import dev.kindling.devices.virtio.VirtioWorkers;
import dev.kindling.devices.virtio.queue.Descriptor;
import dev.kindling.devices.virtio.queue.DescriptorChain;
import dev.kindling.devices.virtio.queue.Virtqueue;
import dev.kindling.devices.virtio.queue.VirtqueueException;
import dev.kindling.memory.GuestMemory;
import dev.kindling.snapshot.SnapshotException;
import dev.kindling.snapshot.StateReader;
import dev.kindling.snapshot.StateWriter;
import dev.kindling.sys.PollingInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * virtio-console (virtio 1.2 section 5.3, device ID 3) with one port and no features (no MULTIPORT,
 * no SIZE: the guest's terminal size stays its default), so Linux makes it {@code hvc0} and it can be
 * the kernel console ({@code console=hvc0}).
 *
 * <p><b>Receive</b> (queue 0). Host bytes come from an {@link InputStream}, read by a thread of the
 * device's from the first activation until {@link #close()}, and from {@link #enqueueInput(byte[])}.
 * Both go into a buffer of {@link #INPUT_BUFFER} bytes, where they wait until the guest posts
 * receive buffers; the device thread then fills each posted chain with what is there (a chain may be
 * partly filled). When the buffer is full the reader waits for room and {@code enqueueInput} refuses,
 * so no accepted byte is lost; nothing here waits in a vCPU. Buffered input survives a device reset,
 * and is what a snapshot saves of the device.
 *
 * <p><b>Transmit</b> (queue 1). The device thread writes each chain's device-readable bytes to the
 * {@link OutputStream} in order, flushes after each batch, and returns the chain. A slow stream slows
 * the device thread only (the guest's driver waits for its chains, as it would for a slow line); a
 * stream that throws is reported once through the context's {@code reportFatal} and gets no more
 * output, which from then on is consumed and dropped. One chain writes at most {@link #MAX_CHAIN}
 * bytes. A device reset or pause takes effect between two chains: it waits for the chain being
 * written (one stream write per 4 KiB), ten seconds at most.
 *
 * <p><b>Closing.</b> {@link #close()} stops the device threads, then interrupts the reader and waits
 * up to {@link #READER_JOIN_MILLIS} ms for it. A stream whose {@code read} does not end on an
 * interrupt ({@code System.in}, a {@code FileInputStream}) keeps the reader until that read returns;
 * give one that its owner can end, such as {@link PollingInputStream}, and close it before the device.
 * The streams are not closed: they belong to the caller.
 */
public final class VirtioConsole implements VirtioDevice {
    private static final System.Logger LOG = System.getLogger(VirtioConsole.class.getName());
    /** Bytes of host input that can wait for the guest's receive buffers. */
    public static final int INPUT_BUFFER = 64 * 1024;
    static final long READER_JOIN_MILLIS = 2_000;
    static final int RECEIVE_QUEUE = 0;
    static final int TRANSMIT_QUEUE = 1;
    private static final int QUEUE_SIZE = 256;
    private static final int CHUNK = 4096;
    /**
     * The most one transmit chain writes (the rest is dropped): Linux's hvc sends at most a page per
     * chain, and a guest must not make one chain cost the device thread gigabytes of copying.
     */
    static final long MAX_CHAIN = 1 << 20;

    private final String name;
    private final InputStream in;
    private final InputBuffer input = new InputBuffer(INPUT_BUFFER);
    private final VirtioWorkers workers;

    /** Read by the transmit thread; null once it failed. Never guarded by this: reset() holds that while joining. */
    private volatile OutputStream out;
    /** Read by the reader thread to wake the receiver; set under this. */
    private volatile Server server;
    // guarded by this
    private Thread reader;

    /**
     * A console whose guest output goes to {@code out} (null: dropped) and whose input comes from
     * {@code in} (null: only {@link #enqueueInput}). For a microVM's console, {@code out} is what the
     * console records, such as {@code Console}'s sink.
     */
    public VirtioConsole(String name, InputStream in, OutputStream out) {
        this.name = Objects.requireNonNull(name, "name");
        this.in = in;
        this.out = out;
        this.workers = new VirtioWorkers(name);
    }

    /** A console with output only. */
    public VirtioConsole(String name, OutputStream out) {
        this(name, null, out);
    }

    @Override
    public int deviceType() {
        return VirtioIds.CONSOLE;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long features() {
        return 0;
    }

    @Override
    public int queueCount() {
        return 2;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return 0; // cols, rows, max_nr_ports and emerg_wr only exist with features it does not offer
    }

    @Override
    public long readConfig(int offset, int size) {
        return 0;
    }

    @Override
    public void writeConfig(int offset, int size, long value) {}

    /**
     * Queues host input for the guest without blocking: false, queuing nothing, when the buffer has no
     * room for all of {@code bytes}. Dropped after {@link #close()}.
     */
    public boolean enqueueInput(byte[] bytes) {
        if (!input.offer(bytes)) {
            return false;
        }
        wakeReceiver();
        return true;
    }

    @Override
    public synchronized void activate(VirtioContext context) {
        server = null;
        Server s = new Server(context);
        workers.activate(context, a -> {
            s.rx = a.start("rx", List.of(context.queueNotifier(RECEIVE_QUEUE)), s::receive);
            a.start("tx", List.of(context.queueNotifier(TRANSMIT_QUEUE)), w -> () -> s.transmit(w));
        });
        server = s;
        if (in != null && reader == null) {
            Thread t = context.threads().newThread(this::readInput);
            t.setName(t.getName() + "-in");
            t.start();
            reader = t;
        }
    }

    @Override
    public synchronized void reset() {
        server = null;
        workers.reset();
    }

    /**
     * The host input accepted and not yet given to the guest: the guest gets it after a restore,
     * as it would have here. (Its chains are all returned: a pause comes between two.)
     */
    @Override
    public void saveState(StateWriter out) {
        out.putBytes(input.contents());
    }

    /** Puts the saved input ahead of any the restored console was given before it started. */
    @Override
    public void restoreState(StateReader in) {
        byte[] saved = in.getBytes();
        if (saved.length > INPUT_BUFFER) {
            throw in.bad(saved.length + " bytes of pending input, more than the buffer's " + INPUT_BUFFER);
        }
        if (!input.prepend(saved)) {
            throw new SnapshotException(name + ": no room for the " + saved.length
                    + " bytes of input the snapshot had pending (input was queued before the restore)");
        }
    }

    @Override
    public void quiesce() {
        workers.quiesce();
    }

    @Override
    public void resume() {
        workers.resume();
    }

    @Override
    public void close() {
        Thread r;
        synchronized (this) {
            server = null;
            if (!workers.close()) {
                return;
            }
            r = reader;
        }
        input.close();
        if (r != null) {
            r.interrupt();
            try {
                r.join(READER_JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (r.isAlive()) {
                LOG.log(Level.WARNING, name + ": the input stream's read did not end on interrupt; its reader stays until it returns");
            }
        }
    }

    private void wakeReceiver() {
        Server s = server;
        if (s != null) {
            s.rx.wake();
        }
    }

    private void readInput() {
        byte[] buf = new byte[CHUNK];
        try {
            while (!input.isClosed()) {
                int n = in.read(buf);
                if (n < 0) {
                    return;
                }
                if (!input.put(buf, 0, n)) {
                    return; // closed while waiting for room
                }
                wakeReceiver();
            }
        } catch (InterruptedIOException e) {
            // close()
        } catch (IOException | RuntimeException e) {
            if (!input.isClosed()) {
                LOG.log(Level.WARNING, name + ": the input stream failed; the console gets no more input", e);
            }
        }
    }


    @Override
    public String toString() {
        return name + " (virtio-console)";
    }

    /** One activation: the two queues, each served by its own thread. */
    private final class Server {
        private final VirtioContext context;
        private final GuestMemory memory;
        private final Virtqueue rxq;
        private final Virtqueue txq;
        private final byte[] rxChunk = new byte[CHUNK];
        private final byte[] txChunk = new byte[CHUNK];
        /** Set before either thread runs. */
        private VirtioWorker rx;
        /** Set by either thread: a broken queue stops both until the reset. */
        private volatile boolean broken;

        Server(VirtioContext context) {
            this.context = context;
            this.memory = context.memory();
            this.rxq = context.queues().get(RECEIVE_QUEUE);
            this.txq = context.queues().get(TRANSMIT_QUEUE);
        }

        /** Fills posted receive chains with buffered input, as long as both last. */
        int receive() {
            if (broken || !rxq.ready()) {
                return -1;
            }
            boolean used = false;
            try {
                while (!input.isEmpty()) {
                    Optional<DescriptorChain> next;
                    try {
                        next = rxq.pop(memory);
                    } catch (VirtqueueException.InvalidChain e) {
                        rxq.addUsed(memory, e.head(), 0);
                        used = true;
                        continue;
                    }
                    if (next.isEmpty()) {
                        if (rxq.setNotificationsEnabled(memory, true)) {
                            continue; // buffers arrived while enabling
                        }
                        break; // the queue's notifier wakes the thread when the guest posts some
                    }
                    DescriptorChain chain = next.get();
                    rxq.addUsed(memory, chain.head(), fill(chain.writable()));
                    used = true;
                }
            } catch (VirtqueueException e) {
                broken(e);
            } finally {
                if (used) {
                    context.signalUsed(RECEIVE_QUEUE);
                }
            }
            return -1;
        }

        private int fill(List<Descriptor> buffers) {
            int done = 0;
            for (Descriptor d : buffers) {
                MemorySegment dst = memory.slice(d.address(), Integer.toUnsignedLong(d.length()));
                long at = 0;
                while (at < dst.byteSize()) {
                    int n = input.take(rxChunk, (int) Math.min(rxChunk.length, dst.byteSize() - at));
                    if (n == 0) {
                        return done;
                    }
                    MemorySegment.copy(rxChunk, 0, dst, ValueLayout.JAVA_BYTE, at, n);
                    at += n;
                    done += n;
                }
            }
            return done;
        }

        /**
         * Writes every available transmit chain to the stream, in order, until a stop or pause asks
         * the worker to yield between two chains. A chain's output is capped at {@link #MAX_CHAIN}.
         */
        int transmit(VirtioWorker worker) {
            if (broken || !txq.ready()) {
                return -1;
            }
            boolean used = false;
            OutputStream stream = out;
            try {
                while (true) {
                    if (worker.yieldAsked()) {
                        if (used) {
                            stream = flush(stream);
                            context.signalUsed(TRANSMIT_QUEUE);
                        }
                        return 0;
                    }
                    Optional<DescriptorChain> next;
                    try {
                        next = txq.pop(memory);
                    } catch (VirtqueueException.InvalidChain e) {
                        txq.addUsed(memory, e.head(), 0);
                        used = true;
                        continue;
                    }
                    if (next.isEmpty()) {
                        if (used) {
                            stream = flush(stream);
                            context.signalUsed(TRANSMIT_QUEUE);
                            used = false;
                        }
                        if (txq.setNotificationsEnabled(memory, true)) {
                            continue;
                        }
                        return -1;
                    }
                    DescriptorChain chain = next.get();
                    long left = MAX_CHAIN;
                    for (Descriptor d : chain.readable()) {
                        long n = Math.min(Integer.toUnsignedLong(d.length()), left);
                        stream = write(stream, memory.slice(d.address(), n));
                        left -= n;
                    }
                    txq.addUsed(memory, chain.head(), 0);
                    used = true;
                }
            } catch (VirtqueueException e) {
                broken(e);
                if (used) {
                    context.signalUsed(TRANSMIT_QUEUE);
                }
                return -1;
            }
        }

        private OutputStream write(OutputStream stream, MemorySegment src) {
            for (long at = 0; stream != null && at < src.byteSize(); at += CHUNK) {
                int n = (int) Math.min(CHUNK, src.byteSize() - at);
                MemorySegment.copy(src, ValueLayout.JAVA_BYTE, at, txChunk, 0, n);
                try {
                    stream.write(txChunk, 0, n);
                } catch (IOException | RuntimeException e) {
                    return failed(stream, e);
                }
            }
            return stream;
        }

        private OutputStream flush(OutputStream stream) {
            if (stream != null) {
                try {
                    stream.flush();
                } catch (IOException | RuntimeException e) {
                    return failed(stream, e);
                }
            }
            return stream;
        }

        private OutputStream failed(OutputStream stream, Exception e) {
            out = null; // only this thread writes it after construction
            context.reportFatal(name + ": the console's output stream failed; later output is dropped", e);
            return null;
        }

        private void broken(VirtqueueException e) {
            broken = true;
            context.needsReset(name + ": " + e.getMessage());
        }
    }
}

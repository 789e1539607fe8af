/**
 * Saving and restoring a machine's state: {@link dev.kindling.snapshot.Stateful} parts write their
 * state with a {@link dev.kindling.snapshot.StateWriter} and read it back with a
 * {@link dev.kindling.snapshot.StateReader}; a bad or short state is a
 * {@link dev.kindling.snapshot.SnapshotException}.
 */
package dev.kindling.snapshot;

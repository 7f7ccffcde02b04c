using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using InitramfsPS.Compression;
using InitramfsPS.Cpio;
using InitramfsPS.Errors;
using InitramfsPS.Init;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Export
{
    /// <summary>Options of <see cref="InitramfsExporter.Export"/>.</summary>
    internal sealed record ExportSettings
    {
        /// <summary>Compression of the archive.</summary>
        public InitramfsCompression Compression { get; init; }

        /// <summary>Compression level (see <see cref="Compressors.CheckLevel"/>).</summary>
        public int Level { get; init; }

        /// <summary>Threads compressing parts at once; the bytes written do not depend on it.</summary>
        public int Workers { get; init; } = DefaultWorkers;

        /// <summary>
        /// One compressor per core, at most 8: each holds about 16 MB of parts in flight, so more
        /// would cost memory for little gain. The bytes written do not depend on the count.
        /// </summary>
        public static int DefaultWorkers => Math.Clamp(Environment.ProcessorCount, 1, 8);

        /// <summary>Add /dev, /dev/console, /proc, /sys, /tmp and /run when missing.</summary>
        public bool AddDefaultEntries { get; init; } = true;

        /// <summary>Clamp every mtime to at most this (Unix seconds), as SOURCE_DATE_EPOCH asks.</summary>
        public long? ClampMTime { get; init; }

        /// <summary>Write the archive even when /init would not start; the problems become warnings.</summary>
        public bool AllowUnbootable { get; init; }

        /// <summary>Replace an existing file at the path.</summary>
        public bool Overwrite { get; init; } = true;

        /// <summary>Updated as the export goes, for a caller on another thread to show.</summary>
        public ExportProgress? Progress { get; init; }

        /// <summary>The kernel that will boot the archive: its errors (no decompressor, another architecture...) refuse the export as /init problems do.</summary>
        public Boot.KernelImage? Kernel { get; init; }

        /// <summary>Compressed parts of earlier exports, to copy instead of compressing (issue 16); null for none.</summary>
        public IPartStore? PartStore { get; init; }
    }

    /// <summary>
    /// How far an export is, read from another thread while it runs: bytes of cpio against a total
    /// known before the first byte is written, so a slow compression level still shows movement.
    /// </summary>
    public sealed class ExportProgress
    {
        private PartPipeline? pipeline;
        private long totalBytes;
        private int entries;
        private int entriesWritten;

        /// <summary>Bytes of cpio the archive holds, known once the export is planned (0 before).</summary>
        public long TotalBytes => Interlocked.Read(ref totalBytes);

        /// <summary>Entries the archive holds, known once the export is planned.</summary>
        public int Entries => Volatile.Read(ref entries);

        /// <summary>Entries written into the cpio stream so far.</summary>
        public int EntriesWritten => Volatile.Read(ref entriesWritten);

        /// <summary>Bytes of cpio written so far (they may still wait for their compressor).</summary>
        public long WrittenBytes => Volatile.Read(ref pipeline)?.UncompressedBytes ?? 0;

        /// <summary>Bytes of cpio compressed so far (equal to <see cref="WrittenBytes"/> for a plain archive once written).</summary>
        public long CompressedBytes => Volatile.Read(ref pipeline)?.CompressedInputBytes ?? 0;

        /// <summary>Bytes in the file so far.</summary>
        public long FileBytes => Volatile.Read(ref pipeline)?.BytesWritten ?? 0;

        internal void Start(long total, int count, PartPipeline writer)
        {
            Interlocked.Exchange(ref totalBytes, total);
            Volatile.Write(ref entries, count);
            Volatile.Write(ref pipeline, writer);
        }

        internal void Entry(int written) => Volatile.Write(ref entriesWritten, written);
    }

    /// <summary>What an export wrote.</summary>
    public sealed class ExportReport
    {
        /// <summary>The archive file.</summary>
        public required string Path { get; init; }

        /// <summary>Its compression.</summary>
        public InitramfsCompression Compression { get; init; }

        /// <summary>The level used (0 when uncompressed).</summary>
        public int CompressionLevel { get; init; }

        /// <summary>Entries in the archive (the trailer not counted).</summary>
        public int EntryCount { get; init; }

        /// <summary>
        /// Independently compressed parts in the file (gzip members or zstd frames; 1 for a plain
        /// archive). Where parts end depends only on the content, never on the worker count.
        /// </summary>
        public int PartCount { get; init; }

        /// <summary>Size of the cpio stream before compression.</summary>
        public long UncompressedSize { get; init; }

        /// <summary>Size of the file.</summary>
        public long CompressedSize { get; init; }

        /// <summary>Parts run through the compressor (all of them without a part cache).</summary>
        public int PartsCompressed { get; init; }

        /// <summary>Parts copied from the part cache instead of compressed: unchanged since an earlier export at the same compression and level.</summary>
        public int PartsReused { get; init; }

        /// <summary>Bytes of cpio run through the compressor; the rest was in reused parts (or, uncompressed, copied).</summary>
        public long BytesCompressed { get; init; }

        /// <summary>sha256 of the file, lower-case hex.</summary>
        public required string Sha256 { get; init; }

        /// <summary>How long the export took.</summary>
        public TimeSpan Duration { get; init; }

        /// <summary>Problems accepted under -Force and entries the export added.</summary>
        public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();

        /// <summary>Entries the export added: what the kernel needs (/dev/console, mount points) and a generated /init.</summary>
        public IReadOnlyList<string> AddedEntries { get; init; } = Array.Empty<string>();

        /// <summary>Where /init came from: the image, the user, or generated from the image config.</summary>
        public InitOrigin InitOrigin { get; init; }

        /// <summary>What /init runs: the workload's command line for a generated /init, else the program /init is.</summary>
        public string? InitCommand { get; init; }

        /// <summary>The least guest memory, in bytes, the archive boots in (Boot/MemoryModel.cs: the kernel, the archive while it is unpacked, the unpacked files, with a margin).</summary>
        public long MinimumMemory { get; init; }

        /// <summary>Compressed size over uncompressed size.</summary>
        public double Ratio => UncompressedSize == 0 ? 0 : Math.Round((double)CompressedSize / UncompressedSize, 3);

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Path} ({Compression}, {EntryCount} entries, {Units.Bytes(UncompressedSize)} -> {Units.Bytes(CompressedSize)}, sha256:{Sha256[..12]}…)");
    }

    /// <summary>A rootfs as an export writes it, with what was added to it and why.</summary>
    internal sealed record PreparedRootfs(Rootfs Rootfs, List<string> Added, List<string> Warnings, InitPlan Init);

    /// <summary>
    /// Writes a rootfs as an initramfs: cpio newc in the order of <see cref="Rootfs.GetEntries"/>
    /// (parents first, names sorted by bytes), inode numbers from the names (<see cref="InodeNumbers"/>), a hardlink group's
    /// data once on its first name, the entries the kernel needs added, mtimes clamped when asked,
    /// compressed, into a temporary file renamed over the target only when complete.
    /// </summary>
    internal static class InitramfsExporter
    {
        /// <summary>Entries the kernel needs that images never ship: without /dev/console init has no stdio.</summary>
        public static IReadOnlyList<RootfsEntry> DefaultEntries { get; } = new[]
        {
            new RootfsEntry { Path = "/dev", Type = EntryType.Directory, Mode = 0x1ED, Source = "generated" },
            new RootfsEntry { Path = "/dev/console", Type = EntryType.CharDevice, Mode = 0x180, DevMajor = 5, DevMinor = 1, Source = "generated" },
            new RootfsEntry { Path = "/proc", Type = EntryType.Directory, Mode = 0x16D, Source = "generated" },
            new RootfsEntry { Path = "/sys", Type = EntryType.Directory, Mode = 0x16D, Source = "generated" },
            new RootfsEntry { Path = "/tmp", Type = EntryType.Directory, Mode = 0x3FF, Source = "generated" },
            new RootfsEntry { Path = "/run", Type = EntryType.Directory, Mode = 0x1ED, Source = "generated" },
        };

        /// <summary>Checks the rootfs and writes it to <paramref name="path"/>.</summary>
        public static ExportReport Export(Rootfs source, string path, ExportSettings options, CancellationToken cancellationToken)
        {
            var stopwatch = Stopwatch.StartNew();
            var prepared = Prepare(source, options.AddDefaultEntries);
            var rootfs = prepared.Rootfs;

            // The full check of Test-Initramfs: errors refuse the export unless -Force. Names and sizes
            // the format cannot hold are refused below whatever -Force says, with their own ids. It
            // runs beside the plan and the writing (all of them only read the rootfs): on Debian
            // minbase it took 25-35 ms, and waited for before the first part it held up a rebuild
            // by 10-25 ms. A refusal stops the writing at once (refused), is what the export
            // throws whatever the writing met meanwhile, and comes before the archive gets its
            // name; the temporary file goes with the rest.
            using var refused = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var inspectionWarnings = new List<string>();
            var inspection = System.Threading.Tasks.Task.Run(() =>
            {
                var findings = Inspection.RootfsInspector.Inspect(rootfs, new Inspection.InspectionOptions
                {
                    ConsoleMissingSeverity = Inspection.FindingSeverity.Warning,
                    ConsoleMissingNote = "-NoDefaultEntries was given; the kernel's own built-in initramfs may still provide it.",
                    CheckArchiveLimits = false,
                    Init = prepared.Init,
                }, cancellationToken);
                try
                {
                    CheckFindings(findings, rootfs, options, inspectionWarnings);
                }
                catch (InitramfsException)
                {
                    refused.Cancel();
                    throw;
                }
            }, cancellationToken);
            try
            {
                return Write(prepared, path, options, stopwatch, inspection, inspectionWarnings, refused.Token);
            }
            catch
            {
                // What the inspection refuses is said first, as when the two ran one after the other
                // (this waits for it: it must not outlive the export either).
                inspection.GetAwaiter().GetResult();
                throw;
            }
        }

        /// <summary>
        /// Export's plan and writing, beside the <paramref name="inspection"/>, which is waited for
        /// (and its refusal thrown) before the archive is renamed into place.
        /// </summary>
        private static ExportReport Write(PreparedRootfs prepared, string path, ExportSettings options, Stopwatch stopwatch,
            System.Threading.Tasks.Task inspection, List<string> inspectionWarnings, CancellationToken cancellationToken)
        {
            var rootfs = prepared.Rootfs;
            var warnings = prepared.Warnings;
            // Sized once: a list grown by doubling leaves its smaller arrays behind, new memory each export.
            var entries = new List<RootfsEntry>(rootfs.Count);
            var subdirectories = new List<int>(rootfs.Count);
            foreach (var (entry, count) in rootfs.GetEntriesWithSubdirectoryCounts())
            {
                entries.Add(entry);
                subdirectories.Add(count);
            }
            var plan = Plan(entries, subdirectories, options, out long totalBytes);

            string fullPath = System.IO.Path.GetFullPath(path);
            string directory = System.IO.Path.GetDirectoryName(fullPath)!;
            if (!Directory.Exists(directory))
            {
                throw new InitramfsException("OutputDirectoryMissing", FailureKind.NotFound, $"The directory '{directory}' does not exist.", directory);
            }
            if (!options.Overwrite && File.Exists(fullPath))
            {
                throw new InitramfsException("OutputExists", FailureKind.WriteFailed, $"'{fullPath}' exists and -NoClobber was given.", fullPath);
            }
            var validated = new HashSet<(string, long)>();
            foreach (var content in entries.Select(e => e.Content).OfType<Content>())
            {
                if (content.ValidationKey is not { } key || validated.Add(key))
                {
                    content.Validate();
                }
            }

            // A kill -9 of an earlier export to this path leaves its temporary file; a live export
            // holds its own open exclusively, so only the stale ones go.
            Files.SweepStalePartials(directory, $".{System.IO.Path.GetFileName(fullPath)}.*.partial");
            string temp = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.partial");
            try
            {
                long uncompressed;
                string sha256;
                long compressedSize;
                int parts, partsCompressed, partsReused;
                long bytesCompressed;
                AtomicFileWriter created;
                try
                {
                    created = new AtomicFileWriter(temp, 1);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // A directory no file can be made in (/proc, /sys, read-only): as a write failure, naming the output.
                    throw new InitramfsException("ExportWriteFailed", FailureKind.WriteFailed, $"Cannot write '{fullPath}': {ex.Message}", fullPath, ex);
                }
                using (var file = created)
                {
                    using var pipeline = new PartPipeline(file, options.Compression, options.Level, options.Workers, options.PartStore, cancellationToken);
                    options.Progress?.Start(totalBytes, entries.Count, pipeline);
                    try
                    {
                        var writer = new CpioRecordWriter(pipeline);
                        WriteParts(writer, pipeline, entries, plan, options, cancellationToken);
                        uncompressed = writer.Position;
                        pipeline.Complete();
                    }
                    catch
                    {
                        pipeline.Abort();
                        throw;
                    }
                    sha256 = Convert.ToHexString(file.Sha256()).ToLowerInvariant();
                    compressedSize = pipeline.BytesWritten;
                    parts = pipeline.PartCount;
                    partsCompressed = pipeline.PartsCompressed;
                    partsReused = pipeline.PartsReused;
                    bytesCompressed = pipeline.BytesCompressed;
                    // The inspection's refusal, if it has one, before the archive has its name.
                    inspection.GetAwaiter().GetResult();
                    warnings.AddRange(inspectionWarnings);
                    file.Commit(fullPath, options.Overwrite ? ExistingFile.Replace : ExistingFile.Fail);
                }
                return new ExportReport
                {
                    Path = fullPath,
                    Compression = options.Compression,
                    CompressionLevel = options.Compression == InitramfsCompression.None ? 0 : options.Level,
                    EntryCount = entries.Count,
                    PartCount = parts,
                    PartsCompressed = partsCompressed,
                    PartsReused = partsReused,
                    BytesCompressed = bytesCompressed,
                    UncompressedSize = uncompressed,
                    CompressedSize = compressedSize,
                    Sha256 = sha256,
                    Duration = stopwatch.Elapsed,
                    Warnings = warnings,
                    AddedEntries = prepared.Added,
                    InitOrigin = prepared.Init.Origin,
                    InitCommand = prepared.Init.Command,
                    MinimumMemory = Boot.MemoryModel.Minimum(Boot.ArchiveFootprint.Of(rootfs, compressedSize)),
                };
            }
            catch (IOException ex) when (ex is not FileNotFoundException)
            {
                Files.TryDelete(temp);
                throw new InitramfsException("ExportWriteFailed", FailureKind.WriteFailed, $"Cannot write '{fullPath}': {ex.Message}", fullPath, ex);
            }
            catch
            {
                Files.TryDelete(temp);
                throw;
            }
        }

        /// <summary>Adds the kernel's findings, refuses the export on an error unless -Force, and keeps the warnings.</summary>
        private static void CheckFindings(List<Inspection.Finding> findings, Rootfs rootfs, ExportSettings options, List<string> warnings)
        {
            if (options.Kernel is { } kernel)
            {
                var codecs = options.Compression == InitramfsCompression.None ? Array.Empty<InitramfsCompression>() : new[] { options.Compression };
                findings.AddRange(Boot.KernelCheck.Check(kernel, rootfs, codecs));
            }
            var errors = findings.Where(f => f.Severity == Inspection.FindingSeverity.Error).ToList();
            if (errors.Count > 0 && !options.AllowUnbootable)
            {
                throw new InitramfsException(errors[0].Id, FailureKind.NotBootable,
                    string.Join(" ", errors.Select(f => f.Message)) + " Use -Force to write the archive anyway.", errors[0].Path);
            }
            warnings.AddRange(findings.Where(f => f.Severity != Inspection.FindingSeverity.Info).Select(f => f.Message));
        }

        /// <summary>
        /// The rootfs as an export writes it (a copy when anything is added): the entries the kernel
        /// needs added when <paramref name="addDefaultEntries"/> is set, and the /init generated from
        /// the image config when the rootfs has none. Test-Initramfs checks the same.
        /// </summary>
        public static PreparedRootfs Prepare(Rootfs source, bool addDefaultEntries)
        {
            var warnings = new List<string>();
            var added = new List<string>();
            var rootfs = source;
            if (addDefaultEntries)
            {
                rootfs = source.Clone();
                foreach (var entry in DefaultEntries)
                {
                    var parent = rootfs.GetEntry(RootfsPath.Parent(entry.Path));
                    if (rootfs.Contains(entry.Path))
                    {
                        continue;
                    }
                    if (parent?.Type != EntryType.Directory)
                    {
                        warnings.Add($"{entry.Path} was not added: {RootfsPath.Parent(entry.Path)} is not a directory.");
                        continue;
                    }
                    rootfs.Set(entry, null);
                    added.Add(entry.Path);
                }
            }
            var init = InitPlanner.Plan(rootfs);
            if (init.Generated is { } generated)
            {
                if (ReferenceEquals(rootfs, source))
                {
                    rootfs = source.Clone();
                }
                rootfs.Set(generated, null);
                added.Add(generated.Path);
                warnings.Add(init.GeneratedNote!);
                warnings.AddRange(init.Warnings);
            }
            return new PreparedRootfs(rootfs, added, warnings, init);
        }

        /// <summary>The bytes of the cpio stream <paramref name="rootfs"/> is written as (the trailer included), without writing it.</summary>
        public static long CpioSize(Rootfs rootfs)
        {
            long total = NewcCodec.TrailerSize;
            var seen = new HashSet<HardlinkGroup>(ReferenceEqualityComparer.Instance);
            foreach (var e in rootfs.GetEntries())
            {
                long data = e.Type switch
                {
                    EntryType.File => e.Hardlink is null || seen.Add(e.Hardlink) ? e.Size : 0,
                    EntryType.Symlink => Encoding.UTF8.GetByteCount(e.LinkTarget ?? string.Empty),
                    _ => 0,
                };
                total += NewcCodec.RecordSize(Encoding.UTF8.GetByteCount(RootfsPath.ArchiveName(e.Path)), data);
            }
            return total;
        }

        /// <summary>
        /// Each entry's header as it will be written, and whether its data follows, by index. The
        /// names are not kept: for 100k entries the UTF-8 names would hold several MB for the whole
        /// export; they are encoded again as written. Two arrays, not one of pairs, because the part
        /// cuts and recipes take them so: a copy of 100k headers (5 MB) was memory new to the
        /// process at every export, and such memory is dear here (see ChunkPool).
        /// </summary>
        private sealed record Planned(CpioHeader[] Headers, bool[] WriteData);

        /// <summary>Validates every entry against what newc and the kernel can hold, and fixes inode numbers and link counts.</summary>
        private static Planned Plan(List<RootfsEntry> entries, List<int> subdirectories, ExportSettings options, out long totalBytes)
        {
            totalBytes = NewcCodec.TrailerSize;
            var plan = new Planned(new CpioHeader[entries.Count], new bool[entries.Count]);
            var groupSizes = new Dictionary<HardlinkGroup, int>(ReferenceEqualityComparer.Instance);
            foreach (var e in entries)
            {
                if (e.Type == EntryType.File && e.Hardlink is { } g)
                {
                    groupSizes[g] = groupSizes.TryGetValue(g, out int n) ? n + 1 : 1;
                }
            }
            var groupInodes = new Dictionary<HardlinkGroup, uint>(ReferenceEqualityComparer.Instance);
            var inodes = new InodeNumbers(entries.Count);
            byte[] name = new byte[1024];
            for (int i = 0; i < entries.Count; i++)
            {
                var e = entries[i];
                int nameLength = PartPlan.EncodeName(e, ref name);
                var nameBytes = name.AsSpan(0, nameLength);
                if (!RootfsPath.FitsPathMax(nameLength))
                {
                    throw new InitramfsException("EntryNameTooLong", FailureKind.LimitExceeded,
                        $"The name '{RootfsPath.Printable(e.Path)}' is {nameLength} bytes; the kernel drops names of PATH_MAX ({RootfsPath.PathMax}) bytes or more.", e.Path);
                }
                if (e.Uid is < 0 or > uint.MaxValue || e.Gid is < 0 or > uint.MaxValue)
                {
                    throw new InitramfsException("EntryOwnerOutOfRange", FailureKind.LimitExceeded,
                        $"The owner {e.Owner} of '{RootfsPath.Printable(e.Path)}' does not fit in the 32-bit fields of a newc archive.", e.Path);
                }
                long size;
                bool writeData = false;
                uint nlink = 1;
                uint ino;
                switch (e.Type)
                {
                    case EntryType.File:
                        if (e.Size > RootfsPath.MaxArchiveFileSize)
                        {
                            throw new InitramfsException("EntryTooLarge", FailureKind.LimitExceeded,
                                $"'{RootfsPath.Printable(e.Path)}' is {e.Size} bytes; a newc archive cannot hold a file of 4 GiB or more.", e.Path);
                        }
                        if (e.Hardlink is { } group && groupSizes[group] > 1)
                        {
                            nlink = (uint)groupSizes[group];
                            if (groupInodes.TryGetValue(group, out ino))
                            {
                                // The kernel links later names to the first and takes the data once.
                                size = 0;
                                break;
                            }
                            ino = inodes.Next(nameBytes);
                            groupInodes[group] = ino;
                        }
                        else
                        {
                            ino = inodes.Next(nameBytes);
                        }
                        size = e.Size;
                        writeData = true;
                        break;
                    case EntryType.Symlink:
                        int targetLength = Encoding.UTF8.GetByteCount(e.LinkTarget ?? string.Empty);
                        if (!RootfsPath.FitsPathMax(targetLength))
                        {
                            throw new InitramfsException("SymlinkTargetTooLong", FailureKind.LimitExceeded,
                                $"The symlink '{RootfsPath.Printable(e.Path)}' has a target of {targetLength} bytes; the kernel drops targets of PATH_MAX or more.", e.Path);
                        }
                        ino = inodes.Next(nameBytes);
                        size = targetLength;
                        writeData = true;
                        break;
                    case EntryType.Directory:
                        ino = inodes.Next(nameBytes);
                        nlink = (uint)(2 + subdirectories[i]);
                        size = 0;
                        break;
                    default:
                        ino = inodes.Next(nameBytes);
                        size = 0;
                        break;
                }
                totalBytes += NewcCodec.RecordSize(nameLength, size);
                var header = new CpioHeader
                {
                    Ino = ino,
                    Mode = NewcCodec.TypeBits(e.Type) | (uint)(e.Mode & 0xFFF),
                    Uid = (uint)e.Uid,
                    Gid = (uint)e.Gid,
                    NLink = nlink,
                    MTime = (uint)Math.Clamp(e.MTime, 0, uint.MaxValue),
                    FileSize = (uint)size,
                    RDevMajor = (uint)e.DevMajor,
                    RDevMinor = (uint)e.DevMinor,
                };
                if (options.ClampMTime is { } clamp)
                {
                    header = NewcCodec.MakeReproducible(header, clamp);
                }
                plan.Headers[i] = header;
                plan.WriteData[i] = writeData;
            }
            return plan;
        }

        /// <summary>
        /// Writes the entries part by part, as <see cref="PartPlan"/> cuts them. With a part store,
        /// a part an earlier export compressed (found from its recipe, then by the sha256 of its
        /// bytes) is copied from the store and its entries are not read.
        /// </summary>
        private static void WriteParts(CpioRecordWriter writer, PartPipeline pipeline, List<RootfsEntry> entries, Planned plan, ExportSettings options, CancellationToken cancellationToken)
        {
            using var reader = new ContentReader();
            var headers = plan.Headers;
            var carriesData = plan.WriteData;
            var parts = PartPlan.Cut(entries, headers, carriesData, pipeline.Cuts);
            var store = pipeline.Store;
            if (store is not null)
            {
                PartPlan.SetRecipes(parts, entries, headers, carriesData, options.Workers, cancellationToken);
            }
            byte[] name = new byte[1024];
            using var found = store is null ? null : new KeptParts(store, parts, options.Workers, cancellationToken);
            for (int k = 0; k < parts.Count; k++)
            {
                var part = parts[k];
                cancellationToken.ThrowIfCancellationRequested();
                if (found?.Take(k) is { } kept)
                {
                    pipeline.AddKept(kept, part.Bytes);
                    writer.Skip(part.Bytes);
                    options.Progress?.Entry(part.End);
                    continue;
                }
                pipeline.BeginPart(part.Recipe);
                for (int i = part.Start; i < part.End; i++)
                {
                    if ((i & 255) == 0)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        options.Progress?.Entry(i);
                    }
                    var e = entries[i];
                    ref readonly var header = ref headers[i];
                    int nameLength = PartPlan.EncodeName(e, ref name);
                    writer.WriteHeader(header, name.AsSpan(0, nameLength));
                    if (carriesData[i] && header.FileSize > 0)
                    {
                        if (e.Type == EntryType.Symlink)
                        {
                            writer.WriteData(Encoding.UTF8.GetBytes(e.LinkTarget!));
                        }
                        else
                        {
                            CopyContent(reader, e.Content!, writer, pipeline, cancellationToken);
                        }
                    }
                    writer.EndData();
                }
                if (part.End == entries.Count)
                {
                    writer.WriteTrailer();
                }
            }
            options.Progress?.Entry(entries.Count);
        }

        /// <summary>
        /// The kept parts of an export, looked up ahead of the writing: a part whose recipe an
        /// earlier export recorded is read from the store (and verified there) on the thread pool,
        /// at most <c>workers + 1</c> parts ahead of the one being written, so that a rebuild that
        /// copies most of its parts reads and checks them on every core, not one after the other.
        /// </summary>
        private sealed class KeptParts : IDisposable
        {
            private readonly IPartStore store;
            private readonly List<PlannedPart> parts;
            private readonly int ahead;
            private readonly CancellationToken cancellationToken;
            private readonly System.Threading.Tasks.Task<KeptPart?>?[] lookups;
            private int started;

            public KeptParts(IPartStore store, List<PlannedPart> parts, int workers, CancellationToken cancellationToken)
            {
                this.store = store;
                this.parts = parts;
                this.cancellationToken = cancellationToken;
                ahead = Math.Clamp(workers, 1, 8) + 1;
                lookups = new System.Threading.Tasks.Task<KeptPart?>?[parts.Count];
            }

            /// <summary>The compressed bytes of part <paramref name="index"/> from the store, or null: it must be written.</summary>
            public KeptPart? Take(int index)
            {
                while (started < parts.Count && started <= index + ahead)
                {
                    var part = parts[started];
                    lookups[started++] = store.Recall(part.Recipe!) is { } known && known.Length == part.Bytes
                        ? System.Threading.Tasks.Task.Run(() => store.Find(known.Sha256, cancellationToken), cancellationToken)
                        : null;
                }
                var lookup = lookups[index];
                lookups[index] = null;
                return lookup?.GetAwaiter().GetResult();
            }

            /// <summary>Waits for the lookups still running (they read into memory only), so none outlives the export.</summary>
            public void Dispose()
            {
                foreach (var lookup in lookups)
                {
                    if (lookup is not null)
                    {
                        try
                        {
                            if (lookup.Wait(cancellationToken.IsCancellationRequested ? TimeSpan.FromSeconds(10) : Timeout.InfiniteTimeSpan))
                            {
                                // Not taken (the export stopped): its buffers go back to the store's pool.
                                lookup.Result?.Dispose();
                            }
                        }
                        catch (AggregateException)
                        {
                            // A lookup that failed only matters for the part it was for, which was not taken.
                        }
                    }
                }
            }
        }

        /// <summary>Reads a file's bytes straight into the pipeline's chunk (no intermediate buffer).</summary>
        private static void CopyContent(ContentReader reader, Content content, CpioRecordWriter writer, PartPipeline pipeline, CancellationToken cancellationToken)
        {
            long position = 0;
            while (position < content.Length)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var span = pipeline.GetSpan();
                int want = (int)Math.Min(span.Length, content.Length - position);
                int got = content.Read(reader, position, span[..want]);
                if (got <= 0)
                {
                    throw new InitramfsException("ContentTruncated", FailureKind.InvalidData,
                        $"'{content}' ended after {position} of {content.Length} bytes; it changed while being read.", content.ToString());
                }
                pipeline.Advance(got);
                writer.Advance(got);
                position += got;
            }
        }
    }
}

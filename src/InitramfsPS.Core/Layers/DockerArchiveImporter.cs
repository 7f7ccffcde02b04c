using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>
    /// Reads a <c>docker save</c> archive into the cache: plain, or wrapped in gzip or zstd
    /// (<c>docker save | gzip</c>). The archive is read twice. The first pass reads the headers
    /// only (a plain tar is seeked through; a wrapped one is decompressed and its data dropped) and
    /// manifest.json, chooses the image, and checks every member against the bound of a layer; the
    /// second copies only the members the chosen image references (its config and its layers, through
    /// the links a newer docker save writes for repeated layers) into the content-addressed cache,
    /// under the digest of their bytes. Nothing else is written: a member no image of interest
    /// names, however large, costs no disk, and an archive refused in the first pass leaves nothing
    /// in the cache. The image then reads like any other, and the config's diff_ids verify every layer.
    /// </summary>
    internal static class DockerArchiveImporter
    {
        /// <summary>The most members (tar headers) an archive may hold.</summary>
        public const int MaxMembers = 100_000;

        /// <summary>
        /// Imports the archive at <paramref name="file"/> and resolves the image <paramref name="reference"/>
        /// names. No member may be larger than <paramref name="maxMemberSize"/> (the bound of a layer).
        /// </summary>
        public static OciImage Import(ImageReference reference, string file, BlobStore cache, Action<long, long>? progress, CancellationToken cancellationToken,
            long maxMemberSize = Layers.ExpandOptions.DefaultMaxLayerSize)
        {
            if (!File.Exists(file))
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The docker archive '{file}' does not exist.", file);
            }
            using var stream = OpenArchive(file, 1 << 16, FileOptions.SequentialScan);
            var compression = MediaTypes.Sniff(stream);
            var scan = Scan(stream, compression, reference, file, maxMemberSize, progress, cancellationToken);
            var members = Store(stream, compression, scan, file, cache, progress, cancellationToken);
            return Build(reference, file, scan.Plan, members, scan.Links, cache);
        }

        /// <summary>A member of the archive: where its data starts in the (decompressed) tar, and its size.</summary>
        private readonly record struct ArchiveMember(long DataOffset, long Size);

        /// <summary>The image chosen in manifest.json: the names of its config and layers, as written there.</summary>
        private sealed record Plan(string ConfigName, IReadOnlyList<string> LayerNames);

        /// <summary>What the first pass found.</summary>
        private sealed class ArchiveScan
        {
            public Dictionary<string, ArchiveMember> Files { get; } = new(StringComparer.Ordinal);
            public Dictionary<string, string> Links { get; } = new(StringComparer.Ordinal);
            public Plan Plan { get; set; } = null!;

            /// <summary>The files to store, by name, each the target of the plan's names through the links.</summary>
            public Dictionary<string, ArchiveMember> Needed { get; } = new(StringComparer.Ordinal);
        }

        /// <summary>The first pass: headers, links and manifest.json; the plan, and the members it needs.</summary>
        private static ArchiveScan Scan(FileStream stream, LayerCompression compression, ImageReference reference, string file, long maxMemberSize,
            Action<long, long>? progress, CancellationToken cancellationToken)
        {
            var scan = new ArchiveScan();
            byte[]? manifestJson = null;
            ReadTar(stream, compression, file, progress, (header, data) =>
            {
                string name = Normalize(header.Name);
                if (header.Size > maxMemberSize)
                {
                    throw new InitramfsException("LayerTooLarge", FailureKind.LimitExceeded,
                        $"The docker archive '{file}' holds the member '{RootfsPath.Printable(name)}' of {header.Size} bytes, past the {maxMemberSize} bytes a layer may expand to (a decompression bomb?); the archive is not imported.", file);
                }
                if (name == "manifest.json" && header.TypeFlag is '0' or '\0' && manifestJson is null)
                {
                    using var ms = new MemoryStream();
                    CopyLimited(data, ms, 4 << 20, file);
                    manifestJson = ms.ToArray();
                }
            }, header =>
            {
                string name = Normalize(header.Name);
                if (name.Length == 0)
                {
                    return;
                }
                switch (header.TypeFlag)
                {
                    case '0' or '\0' or '7':
                        // A later member of the same name replaces an earlier one, as tar extracts them.
                        scan.Files[name] = new ArchiveMember(header.DataOffset, header.Size);
                        scan.Links.Remove(name);
                        break;
                    case '1':
                        // A hardlink names its target from the root of the archive.
                        scan.Links[name] = Normalize(header.LinkName);
                        scan.Files.Remove(name);
                        break;
                    case '2':
                        // Newer docker saves write a repeated layer as a symlink to the first copy.
                        scan.Links[name] = CombineRelative(name, header.LinkName);
                        scan.Files.Remove(name);
                        break;
                }
            }, null, cancellationToken);
            if (manifestJson is null)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"'{file}' is not a docker save archive: it has no manifest.json.", file);
            }
            scan.Plan = Choose(reference, file, manifestJson);
            AddNeeded(scan, scan.Plan.ConfigName, "config", file);
            if (scan.Needed[Resolve(scan.Plan.ConfigName, scan.Links)].Size > MaxConfigSize)
            {
                throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded,
                    $"The config '{RootfsPath.Printable(scan.Plan.ConfigName)}' of '{file}' is larger than {MaxConfigSize} bytes.", file);
            }
            for (int i = 0; i < scan.Plan.LayerNames.Count; i++)
            {
                AddNeeded(scan, scan.Plan.LayerNames[i], $"layer {i + 1}", file);
            }
            return scan;
        }

        private const long MaxConfigSize = 64 << 20;

        private static void AddNeeded(ArchiveScan scan, string name, string what, string file)
        {
            string target = Resolve(name, scan.Links);
            if (!scan.Files.TryGetValue(target, out var member))
            {
                throw new InitramfsException("ArchiveLayerMissing", FailureKind.NotFound,
                    $"The docker archive '{file}' names '{RootfsPath.Printable(target)}' as its {what}, but the archive does not contain it.", target);
            }
            scan.Needed[target] = member;
        }

        /// <summary>The name a member's name leads to through the archive's links (at most 8 of them).</summary>
        private static string Resolve(string name, Dictionary<string, string> links)
        {
            for (int hops = 0; hops < 8 && links.TryGetValue(name, out var target); hops++)
            {
                name = target;
            }
            return name;
        }

        /// <summary>
        /// The second pass: copies the members the plan needs into the cache, each committed under the
        /// digest of its bytes. A plain archive is read only where those members are; a wrapped one is
        /// decompressed again, up to the last of them.
        /// </summary>
        private static Dictionary<string, (Digest Digest, long Size)> Store(FileStream stream, LayerCompression compression, ArchiveScan scan, string file,
            BlobStore cache, Action<long, long>? progress, CancellationToken cancellationToken)
        {
            var stored = new Dictionary<string, (Digest Digest, long Size)>(StringComparer.Ordinal);
            var byOffset = new Dictionary<long, string>();
            foreach (var (name, member) in scan.Needed)
            {
                byOffset[member.DataOffset] = name;
            }
            if (compression == LayerCompression.None)
            {
                foreach (var (name, member) in scan.Needed.OrderBy(n => n.Value.DataOffset))
                {
                    stream.Position = member.DataOffset;
                    stored[name] = Copy(new RangeStream(stream, member.Size), member.Size, file, cache, cancellationToken);
                    progress?.Invoke(stream.Position, stream.Length);
                }
                return stored;
            }
            ReadTar(stream, compression, file, progress, (header, data) =>
            {
                if (byOffset.TryGetValue(header.DataOffset, out string? name) && !stored.ContainsKey(name))
                {
                    stored[name] = Copy(data, header.Size, file, cache, cancellationToken);
                }
            }, null, () => stored.Count == byOffset.Count, cancellationToken);
            if (stored.Count != byOffset.Count)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' changed while it was read.", file);
            }
            return stored;
        }

        /// <summary>Hashes and writes <paramref name="size"/> bytes of <paramref name="data"/> into the cache, committed under their digest.</summary>
        private static (Digest Digest, long Size) Copy(Stream data, long size, string file, BlobStore cache, CancellationToken cancellationToken)
        {
            // The cache's writer hashes what it writes: the blob is stored under the digest it computed.
            using var writer = cache.CreateWriter();
            var buffer = new byte[1 << 16];
            long copied = 0;
            int n;
            while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                writer.Write(buffer, n);
                copied += n;
            }
            if (copied != size)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' is truncated: a member ends after {copied} of its {size} bytes.", file);
            }
            var digest = writer.Digest;
            writer.Commit();
            return (digest, size);
        }

        /// <summary>
        /// Reads the tar in <paramref name="stream"/> (decompressing it first when wrapped) from its start,
        /// until its end or until <paramref name="done"/> says so: <paramref name="beforeData"/> sees each
        /// header before its data is skipped, <paramref name="after"/> after. Damage of any kind is ArchiveInvalid.
        /// </summary>
        private static void ReadTar(FileStream stream, LayerCompression compression, string file, Action<long, long>? progress,
            Action<TarHeader, Stream> beforeData, Action<TarHeader>? after, Func<bool>? done, CancellationToken cancellationToken)
        {
            stream.Position = 0;
            Stream tar = compression switch
            {
                LayerCompression.Gzip => new System.IO.Compression.GZipStream(stream, System.IO.Compression.CompressionMode.Decompress, leaveOpen: true),
                LayerCompression.Zstd => new ZstdSharp.DecompressionStream(stream, 1 << 17, checkEndOfStream: true, leaveOpen: true),
                _ => stream,
            };
            try
            {
                var reader = new TarReader(tar, seekData: compression == LayerCompression.None, cancellationToken);
                int members = 0;
                while (done?.Invoke() != true && reader.Next(beforeData) is { } header)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (++members > MaxMembers)
                    {
                        throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' holds more than {MaxMembers} members.", file);
                    }
                    after?.Invoke(header);
                    progress?.Invoke(stream.Position, stream.Length);
                }
            }
            catch (InitramfsException ex) when (ex.ErrorId is "LayerTarCorrupt" or "LayerEntryNameInvalid" or "LayerSparseUnsupported")
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' is not a tar archive (plain, gzip or zstd), or is corrupt or truncated: {ex.Message}", file, ex);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or ZstdSharp.ZstdException)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' is corrupt or truncated: {ex.Message}", file, ex);
            }
            finally
            {
                if (!ReferenceEquals(tar, stream))
                {
                    tar.Dispose();
                }
            }
        }

        /// <summary>The next <c>size</c> bytes of a stream, from where it is.</summary>
        private sealed class RangeStream : ReadOnlyStream
        {
            private readonly Stream inner;
            private long left;

            public RangeStream(Stream inner, long size)
            {
                this.inner = inner;
                left = size;
            }

            public override int Read(Span<byte> buffer)
            {
                int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, left)]);
                left -= n;
                return n;
            }
        }

        /// <summary>The most bytes of a gzip- or zstd-wrapped archive <see cref="ListNames"/> decompresses looking for manifest.json.</summary>
        public const long ListScanLimit = 16 << 20;

        /// <summary>
        /// The names of the images in the archive at <paramref name="file"/>, as <c>docker-archive:file:&lt;name&gt;</c>
        /// takes them: each RepoTag (<c>app:1.0</c>, short for Docker Hub library images), and <c>@&lt;index&gt;</c>
        /// for an image without one. Only manifest.json is read: in a plain tar the other members are
        /// seeked over, never read; a compressed archive is decompressed only up to <see cref="ListScanLimit"/>
        /// bytes (an archive whose manifest.json comes later lists nothing). At most
        /// <paramref name="maxEntries"/> tar headers are looked at, and a manifest.json larger than 4 MiB is refused.
        /// </summary>
        public static IReadOnlyList<string> ListNames(string file, int maxEntries = 100_000)
        {
            using var stream = OpenArchive(file, 1 << 12, FileOptions.RandomAccess);
            var head = new byte[4];
            int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            stream.Position = 0;
            var compression = MediaTypes.Sniff(head.AsSpan(0, n));
            // A wrapped archive cannot be seeked in: its first ListScanLimit bytes are decompressed
            // into memory and scanned there (a member cut off at the limit ends the scan with an error).
            using Stream tar = compression == LayerCompression.None ? stream : DecompressHead(stream, compression);
            var reader = new TarReader(tar, seekData: true);
            for (int entries = 0; entries < maxEntries && reader.Next() is { } header; entries++)
            {
                if (Normalize(header.Name) != "manifest.json" || header.TypeFlag is not ('0' or '\0'))
                {
                    continue;
                }
                if (header.Size > 4 << 20)
                {
                    throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded, $"The manifest.json of '{file}' is larger than {4 << 20} bytes.", file);
                }
                var manifestJson = new byte[header.Size];
                tar.Position = header.DataOffset;
                tar.ReadExactly(manifestJson);
                return NamesIn(manifestJson, file);
            }
            return Array.Empty<string>();
        }

        /// <summary>Opens the archive; a FIFO (whose open would block forever), a device or a directory is ArchiveNotFile.</summary>
        private static FileStream OpenArchive(string file, int bufferSize, FileOptions options)
        {
            try
            {
                return RegularFile.OpenStream(file, bufferSize, options);
            }
            catch (NotRegularFileException ex)
            {
                throw new InitramfsException("ArchiveNotFile", FailureKind.InvalidArgument, $"'{file}' is {ex.Kind}, not a docker archive; it is not read.", file, ex);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The docker archive '{file}' does not exist.", file, ex);
            }
        }

        private static MemoryStream DecompressHead(Stream stream, LayerCompression compression)
        {
            using Stream decoder = compression == LayerCompression.Gzip
                ? new System.IO.Compression.GZipStream(stream, System.IO.Compression.CompressionMode.Decompress, leaveOpen: true)
                : new ZstdSharp.DecompressionStream(stream, 1 << 17, checkEndOfStream: false, leaveOpen: true);
            var head = new MemoryStream();
            var buffer = new byte[1 << 16];
            int n;
            while (head.Length < ListScanLimit && (n = decoder.Read(buffer, 0, (int)Math.Min(buffer.Length, ListScanLimit - head.Length))) > 0)
            {
                head.Write(buffer, 0, n);
            }
            head.Position = 0;
            return head;
        }

        private static List<string> NamesIn(byte[] manifestJson, string file)
        {
            using var doc = LayoutResolver.Parse(manifestJson, $"manifest.json of '{file}'");
            var names = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                return names;
            }
            int index = 0;
            foreach (var image in doc.RootElement.EnumerateArray())
            {
                var tags = image.ValueKind == JsonValueKind.Object ? RepoTags(image).ToList() : new List<string>();
                if (tags.Count == 0)
                {
                    tags.Add("@" + index.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                foreach (string tag in tags)
                {
                    if (seen.Add(tag))
                    {
                        names.Add(tag);
                    }
                }
                index++;
            }
            return names;
        }

        /// <summary>The image <paramref name="reference"/> names in manifest.json: the names of its config and layers.</summary>
        private static Plan Choose(ImageReference reference, string file, byte[] manifestJson)
        {
            using var doc = LayoutResolver.Parse(manifestJson, $"manifest.json of '{file}'");
            if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The manifest.json of '{file}' lists no image.", file);
            }
            var images = doc.RootElement.EnumerateArray().ToList();
            JsonElement chosen;
            if (reference.ArchiveIndex is { } index)
            {
                if (index >= images.Count)
                {
                    throw new InitramfsException("TagNotFound", FailureKind.NotFound, $"The docker archive '{file}' holds {images.Count} images; there is no @{index}.", reference.ToString());
                }
                chosen = images[index];
            }
            else if (reference.Tag is { } wanted)
            {
                var found = images.Where(i => RepoTags(i).Contains(wanted, StringComparer.Ordinal)).ToList();
                if (found.Count == 0)
                {
                    throw new InitramfsException("TagNotFound", FailureKind.NotFound,
                        $"The docker archive '{file}' has no image named '{wanted}'. Names: {string.Join(", ", images.SelectMany(RepoTags).DefaultIfEmpty("(none)"))}.", wanted);
                }
                chosen = found[0];
            }
            else if (images.Count == 1)
            {
                chosen = images[0];
            }
            else
            {
                throw new InitramfsException("TagRequired", FailureKind.InvalidArgument,
                    $"The docker archive '{file}' holds {images.Count} images; name one with docker-archive:{file}:<name:tag> or :@<index>. Names: {string.Join(", ", images.SelectMany(RepoTags))}.", file);
            }

            string configName = Normalize(chosen.TryGetProperty("Config", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : string.Empty);
            var layerNames = new List<string>();
            if (chosen.TryGetProperty("Layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
            {
                foreach (var l in layers.EnumerateArray())
                {
                    if (l.ValueKind != JsonValueKind.String)
                    {
                        throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The manifest.json of '{file}' names a layer with something that is not a string.", file);
                    }
                    layerNames.Add(Normalize(l.GetString()!));
                }
            }
            return new Plan(configName, layerNames);
        }

        private static OciImage Build(ImageReference reference, string file, Plan plan,
            Dictionary<string, (Digest Digest, long Size)> members, Dictionary<string, string> links, BlobStore cache)
        {
            string configName = plan.ConfigName;
            var config = Member(configName, members, links, file, "config");
            // Legacy archives name the config <sha256>.json, newer ones blobs/sha256/<hex>: either way the name is its digest.
            string stem = Path.GetFileNameWithoutExtension(configName);
            if (Digest.TryParse("sha256:" + stem, out var named) && named != config.Digest)
            {
                throw new InitramfsException("DigestMismatch", FailureKind.InvalidData,
                    $"The config '{configName}' in '{file}' does not match its name (its bytes hash to {config.Digest}).", configName);
            }
            var configDescriptor = new Descriptor(MediaTypes.DockerConfig, config.Digest, config.Size);
            var configBytes = cache.ReadVerified(configDescriptor, "image config", 64 << 20);
            using var configDoc = LayoutResolver.Parse(configBytes, $"image config {config.Digest}");
            var imageConfig = ImageConfig.Parse(configDoc.RootElement);

            var layers = new List<LayerDescriptor>();
            for (int i = 0; i < plan.LayerNames.Count; i++)
            {
                var member = Member(plan.LayerNames[i], members, links, file, $"layer {i + 1}");
                var compression = SniffBlob(cache, member.Digest);
                layers.Add(new LayerDescriptor
                {
                    Index = i + 1,
                    MediaType = compression switch
                    {
                        LayerCompression.Gzip => MediaTypes.DockerLayerGzip,
                        LayerCompression.Zstd => MediaTypes.OciLayerZstd,
                        _ => MediaTypes.OciLayerTar,
                    },
                    Digest = member.Digest,
                    Size = member.Size,
                    DiffId = i < imageConfig.DiffIds.Count ? imageConfig.DiffIds[i] : null,
                    Compression = compression,
                });
            }
            LayoutResolver.CheckDiffIds(imageConfig, layers, $"'{file}'");
            // A docker archive has no manifest blob; the config digest is the image's identity, as docker shows it.
            var platform = Platform.Normalize(imageConfig.Os, imageConfig.Architecture, imageConfig.Variant);
            return new OciImage(reference, config.Digest, null, platform, config.Digest, imageConfig, layers, cache.Root);
        }

        private static (Digest Digest, long Size) Member(string name, Dictionary<string, (Digest, long)> members, Dictionary<string, string> links, string file, string what)
        {
            for (int hops = 0; hops < 8 && links.TryGetValue(name, out var target); hops++)
            {
                name = target;
            }
            if (!members.TryGetValue(name, out var member))
            {
                throw new InitramfsException("ArchiveLayerMissing", FailureKind.NotFound,
                    $"The docker archive '{file}' names '{name}' as its {what}, but the archive does not contain it.", name);
            }
            return member;
        }

        private static LayerCompression SniffBlob(BlobStore cache, Digest digest)
        {
            using var s = cache.OpenRead(digest, "layer");
            return MediaTypes.Sniff(s);
        }

        private static IEnumerable<string> RepoTags(JsonElement image)
        {
            if (image.TryGetProperty("RepoTags", out var tags) && tags.ValueKind == JsonValueKind.Array)
            {
                foreach (var t in tags.EnumerateArray())
                {
                    string? s = t.GetString();
                    if (string.IsNullOrEmpty(s))
                    {
                        continue;
                    }
                    string familiar;
                    try
                    {
                        familiar = ImageReference.ParseRegistry(s, s).FamiliarName;
                    }
                    catch (InitramfsException)
                    {
                        familiar = s;
                    }
                    yield return familiar;
                }
            }
        }

        private static string Normalize(string key)
        {
            string k = key.Replace('\\', '/');
            while (k.StartsWith("./", StringComparison.Ordinal))
            {
                k = k[2..];
            }
            return k.TrimStart('/');
        }

        private static string CombineRelative(string from, string target)
        {
            int slash = from.LastIndexOf('/');
            string dir = slash < 0 ? string.Empty : from[..slash];
            var parts = new List<string>(dir.Length == 0 ? Array.Empty<string>() : dir.Split('/'));
            foreach (string p in target.Split('/'))
            {
                if (p == "..")
                {
                    if (parts.Count > 0)
                    {
                        parts.RemoveAt(parts.Count - 1);
                    }
                }
                else if (p.Length > 0 && p != ".")
                {
                    parts.Add(p);
                }
            }
            return string.Join('/', parts);
        }

        private static void CopyLimited(Stream from, Stream to, long limit, string file)
        {
            var buffer = new byte[1 << 16];
            long total = 0;
            int n;
            while ((n = from.Read(buffer, 0, buffer.Length)) > 0)
            {
                total += n;
                if (total > limit)
                {
                    throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded, $"The manifest.json of '{file}' is larger than {limit} bytes.", file);
                }
                to.Write(buffer, 0, n);
            }
        }
    }
}

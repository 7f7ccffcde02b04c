using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using SharpCompress.Readers;

namespace InitramfsPS.Images
{
    /// <summary>
    /// Reads a <c>docker save</c> archive into the cache. The outer archive holds only plain files
    /// (manifest.json, configs, layer tars), which is what SharpCompress reads well, and it detects
    /// an outer gzip or zstd wrapper on its own (<c>docker save | gzip</c>). Each member is copied
    /// into the content-addressed cache under the digest of its bytes, so the image then reads
    /// like any other, and the config's diff_ids verify every layer.
    /// </summary>
    public static class DockerArchiveImporter
    {
        /// <summary>Imports the archive at <paramref name="file"/> and resolves the image <paramref name="reference"/> names.</summary>
        public static OciImage Import(ImageReference reference, string file, BlobStore cache, Action<long, long>? progress, CancellationToken cancellationToken)
        {
            if (!File.Exists(file))
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The docker archive '{file}' does not exist.", file);
            }
            var members = new Dictionary<string, (Digest Digest, long Size)>(StringComparer.Ordinal);
            var links = new Dictionary<string, string>(StringComparer.Ordinal);
            byte[]? manifestJson = null;
            long total = new FileInfo(file).Length;
            FileStream opened;
            try
            {
                opened = IO.HostFile.OpenStream(file, 1 << 16);
            }
            catch (IO.NotAFileException ex)
            {
                throw new InitramfsException("ArchiveNotFile", FailureKind.InvalidArgument, $"The docker archive '{file}' is not a regular file (a FIFO, socket or terminal).", file, ex);
            }
            using (var stream = opened)
            {
                IReader reader;
                try
                {
                    reader = ReaderFactory.OpenReader(stream, new ReaderOptions { LeaveStreamOpen = true });
                }
                catch (Exception ex) when (ex is not InitramfsException and not OperationCanceledException and not OutOfMemoryException)
                {
                    // SharpCompress says "not an archive" with its own InvalidFormatException, among others.
                    throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"'{file}' is not a tar archive: {ex.Message}", file, ex);
                }
                using (reader)
                {
                    try
                    {
                        while (reader.MoveToNextEntry())
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            var entry = reader.Entry;
                            string key = Normalize(entry.Key ?? string.Empty);
                            if (entry.IsDirectory || key.Length == 0)
                            {
                                continue;
                            }
                            if (!string.IsNullOrEmpty(entry.LinkTarget))
                            {
                                // Newer docker saves write a repeated layer as a link to the first copy.
                                links[key] = entry.LinkTarget.Contains('/', StringComparison.Ordinal) && !entry.LinkTarget.StartsWith("../", StringComparison.Ordinal)
                                    ? Normalize(entry.LinkTarget)
                                    : Normalize(CombineRelative(key, entry.LinkTarget));
                                continue;
                            }
                            if (key == "manifest.json")
                            {
                                using var ms = new MemoryStream();
                                using (var es = reader.OpenEntryStream())
                                {
                                    CopyLimited(es, ms, 4 << 20, file);
                                }
                                manifestJson = ms.ToArray();
                                continue;
                            }
                            using var writer = cache.CreateWriter();
                            using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                            long size = 0;
                            using (var es = reader.OpenEntryStream())
                            {
                                var buffer = new byte[1 << 16];
                                int n;
                                while ((n = es.Read(buffer, 0, buffer.Length)) > 0)
                                {
                                    cancellationToken.ThrowIfCancellationRequested();
                                    hash.AppendData(buffer, 0, n);
                                    writer.Write(buffer, n);
                                    size += n;
                                }
                            }
                            var digest = Digest.FromSha256(hash.GetHashAndReset());
                            writer.Commit(digest);
                            members[key] = (digest, size);
                            progress?.Invoke(stream.Position, total);
                        }
                    }
                    catch (Exception ex) when (ex is not InitramfsException and not OperationCanceledException)
                    {
                        throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"The docker archive '{file}' is corrupt or truncated: {ex.Message}", file, ex);
                    }
                }
            }
            if (manifestJson is null)
            {
                throw new InitramfsException("ArchiveInvalid", FailureKind.InvalidData, $"'{file}' is not a docker save archive: it has no manifest.json.", file);
            }
            return Resolve(reference, file, manifestJson, members, links, cache);
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
            using var stream = IO.HostFile.OpenStream(file, 1 << 12);
            var head = new byte[4];
            int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            stream.Position = 0;
            var compression = MediaTypes.Sniff(head.AsSpan(0, n));
            // A wrapped archive cannot be seeked in: its first ListScanLimit bytes are decompressed
            // into memory and scanned there (a member cut off at the limit ends the scan with an error).
            using Stream tar = compression == LayerCompression.None ? stream : DecompressHead(stream, compression);
            var reader = new Layers.TarReader(tar, seekData: true);
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

        private static OciImage Resolve(ImageReference reference, string file, byte[] manifestJson,
            Dictionary<string, (Digest Digest, long Size)> members, Dictionary<string, string> links, BlobStore cache)
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
            if (chosen.TryGetProperty("Layers", out var layerNames) && layerNames.ValueKind == JsonValueKind.Array)
            {
                int i = 0;
                foreach (var l in layerNames.EnumerateArray())
                {
                    string name = Normalize(l.GetString() ?? string.Empty);
                    var member = Member(name, members, links, file, $"layer {i + 1}");
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
                    i++;
                }
            }
            LayoutResolver.CheckDiffIds(imageConfig, layers, $"'{file}'");
            // A docker archive has no manifest blob; the config digest is the image's identity, as docker shows it.
            var platform = Platform.Normalize(imageConfig.Os, imageConfig.Architecture, imageConfig.Variant);
            return new OciImage(reference, config.Digest, null, platform, config.Digest, imageConfig, layers, cache);
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
            var head = new byte[4];
            int n = s.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            return MediaTypes.Sniff(head.AsSpan(0, n));
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

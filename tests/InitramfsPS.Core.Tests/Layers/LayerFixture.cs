using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using InitramfsPS.Layers;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Core.Tests.Layers
{
    /// <summary>
    /// Applies uncompressed layers as the expander does (TarReader.ReadAll, LayerApplier.Classify,
    /// then Apply), each layer kept in a temporary file so that file contents can be read back
    /// through the block digests, as an export reads them.
    /// </summary>
    internal sealed class LayerFixture : IDisposable
    {
        private readonly string directory = Path.Combine(Path.GetTempPath(), "initramfsps-unit-" + Guid.NewGuid().ToString("N"));
        private int layers;

        public LayerFixture() => System.IO.Directory.CreateDirectory(directory);

        /// <summary>Reads and classifies one layer, as "layer N" in errors.</summary>
        public ParsedLayer Parse(byte[] tar, int maxEntries = ExpandOptions.DefaultMaxEntries)
        {
            string name = $"layer {++layers}";
            string path = Path.Combine(directory, $"{layers}.tar");
            File.WriteAllBytes(path, tar);
            var parsed = new ParsedLayer { BackingPath = path, BackingLength = tar.Length, MaxEntries = maxEntries };
            TarReader.ReadAll(new MemoryStream(tar), h => LayerApplier.Classify(h, parsed, name), null, CancellationToken.None);
            using var hasher = new BlockHasher();
            hasher.Append(tar);
            parsed.Blocks = new BlockDigests(path, tar.Length, hasher.Finish(), BlockOwner.LayoutBlob, name);
            return parsed;
        }

        /// <summary>A new rootfs with the layers applied in order.</summary>
        public Rootfs Expand(params byte[][] tars)
        {
            var rootfs = new Rootfs();
            foreach (byte[] tar in tars)
            {
                var parsed = Parse(tar);
                LayerApplier.Apply(rootfs, parsed, $"layer {layers}");
            }
            return rootfs;
        }

        /// <summary>The bytes of a file entry, read through its content as an export reads them.</summary>
        public static byte[] Read(RootfsEntry entry)
        {
            using var reader = new ContentReader();
            var sink = new MemoryStream();
            reader.CopyTo(entry.Content!, sink, new byte[4096], CancellationToken.None);
            return sink.ToArray();
        }

        /// <summary>Every path of the rootfs, in archive order.</summary>
        public static List<string> Paths(Rootfs rootfs)
        {
            var paths = new List<string>();
            foreach (var e in rootfs.GetEntries())
            {
                paths.Add(e.Path);
            }
            return paths;
        }

        public void Dispose()
        {
            try
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

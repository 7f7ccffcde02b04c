using System;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using InitramfsPS.Registry;

namespace InitramfsPS.Layers
{
    /// <summary>What a pull hands each layer's bytes to, for <see cref="PullOptions.LayerSink"/>.</summary>
    internal static class PullSinks
    {
        /// <summary>
        /// Unpacks each compressed layer that is not unpacked in <paramref name="cache"/> yet while it
        /// downloads (<see cref="LayerPrefetch"/>), so that expanding the image need not read it again.
        /// A layer without a diff_id, or stored uncompressed, gets no sink.
        /// </summary>
        public static Func<LayerDescriptor, Action<string>?, IBlobSink?> UnpackLayers(BlobStore cache)
        {
            ArgumentNullException.ThrowIfNull(cache);
            return (layer, verbose) => layer.Compression != LayerCompression.None && layer.DiffId is { } diffId && !cache.Has(diffId)
                ? new LayerPrefetch(layer, cache, verbose)
                : null;
        }
    }
}

using System.Globalization;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.Cache;
using InitramfsPS.Images;

namespace InitramfsPS.Commands
{
    /// <summary>Removes blobs from the local cache: the ones named, or everything.</summary>
    [Cmdlet(VerbsCommon.Clear, "OciCache", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(void))]
    public sealed class ClearOciCacheCommand : InitramfsCmdlet
    {
        /// <summary>Digests of the blobs to remove (from Get-OciCache by property name); without it, the whole cache.</summary>
        [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
        [ArgumentCompleter(typeof(CacheDigestCompleter))]
        [ValidateNotNullOrEmpty]
        public string[]? Digest { get; set; }

        private readonly BlobStore store = new(BlobStore.DefaultCacheRoot());
        private bool any;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            if (Digest is null)
            {
                return;
            }
            any = true;
            foreach (string text in Digest)
            {
                Guard(text, () =>
                {
                    var digest = Images.Digest.Parse(text);
                    if (ShouldProcess($"{digest} in {store.Root}", "Remove cached blob") && !CacheInventory.Remove(store, digest))
                    {
                        WriteVerbose($"{digest} was not in the cache.");
                    }
                });
            }
        }

        /// <inheritdoc/>
        protected override void EndProcessing()
        {
            // Only a bare Clear-OciCache empties the cache: a pipeline that delivered no digests
            // (say, Get-OciCache -Verify filtered to corrupt blobs, and there were none) removes nothing.
            if (any || MyInvocation.ExpectingInput)
            {
                return;
            }
            Guard(store.Root, () =>
            {
                var blobs = CacheInventory.List(store, false, CancellationToken).ToList();
                string what = string.Create(CultureInfo.InvariantCulture, $"Remove all {blobs.Count} blobs ({Units.Bytes(blobs.Sum(b => b.Size))}) and tag records");
                if (ShouldProcess(store.Root, what))
                {
                    CacheInventory.Clear(store);
                }
            });
        }
    }
}

using System.Management.Automation;
using InitramfsPS.Cache;

namespace InitramfsPS.Commands
{
    /// <summary>Lists the blobs of the local cache, optionally re-hashing each.</summary>
    [Cmdlet(VerbsCommon.Get, "OciCache")]
    [OutputType(typeof(CacheBlob))]
    public sealed class GetOciCacheCommand : InitramfsCmdlet
    {
        /// <summary>Re-hash every blob and report whether it matches its digest.</summary>
        [Parameter]
        public SwitchParameter Verify { get; set; }

        /// <inheritdoc/>
        protected override void EndProcessing()
        {
            var store = new BlobStore(BlobStore.DefaultCacheRoot());
            WriteVerbose($"Cache: {store.Root}");
            Guard(store.Root, () =>
            {
                foreach (var blob in CacheInventory.List(store, Verify, CancellationToken))
                {
                    if (blob.Valid is false)
                    {
                        WriteWarning($"The cached blob {blob.Digest} does not match its digest; Clear-OciCache -Digest {blob.Digest} removes it.");
                    }
                    WriteObject(blob);
                }
            });
        }
    }
}

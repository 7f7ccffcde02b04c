using System.Globalization;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.Cache;
using InitramfsPS.IO;
using InitramfsPS.Images;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Removes entries from the local cache: the ones named, the ones no cached image uses
    /// (-Unused), or everything. Entries a running command uses are kept.
    /// </summary>
    /// <remarks>
    /// ConfirmImpact is High for what the bare form does, empty the whole cache: like Remove-Item on
    /// a tree, it asks first at the prompt unless -Force or -Confirm:$false says not to. Removing the
    /// entries named or piped, or those no image uses, is of Medium impact and asks only when
    /// $ConfirmPreference or -Confirm say so; PowerShell has one ConfirmImpact per cmdlet, so
    /// <see cref="ShouldRemove"/> applies the Medium rule itself.
    /// </remarks>
    [Cmdlet(VerbsCommon.Clear, "OciCache", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = AllSet)]
    [OutputType(typeof(void))]
    public sealed class ClearOciCacheCommand : InitramfsCmdlet
    {
        private const string AllSet = "All";
        private const string DigestSet = "Digest";
        private const string UnusedSet = "Unused";

        /// <summary>Digests of the entries to remove (from Get-OciCache by property name).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DigestSet)]
        [ArgumentCompleter(typeof(CacheDigestCompleter))]
        [ValidateNotNullOrEmpty]
        public string[]? Digest { get; set; }

        /// <summary>Remove the entries no cached image uses, then evict down to the budget.</summary>
        [Parameter(Mandatory = true, ParameterSetName = UnusedSet)]
        public SwitchParameter Unused { get; set; }

        /// <summary>Empty the whole cache without asking.</summary>
        [Parameter(ParameterSetName = AllSet)]
        public SwitchParameter Force { get; set; }

        private readonly InitramfsCache store = InitramfsCache.OpenForUpkeep();
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
                    if (!ShouldRemove($"{digest} in {store.Root}", "Remove cached entry", ConfirmImpact.Medium))
                    {
                        return;
                    }
                    switch (store.Remove(digest.ToString()))
                    {
                        case RemoveOutcome.NotFound:
                            WriteVerbose($"{digest} was not in the cache.");
                            break;
                        case RemoveOutcome.InUse:
                            WriteError(InUse(digest));
                            break;
                    }
                });
            }
        }

        /// <inheritdoc/>
        protected override void EndProcessing()
        {
            if (Unused)
            {
                RemoveUnused();
                return;
            }
            // Only a bare Clear-OciCache empties the cache: a pipeline that delivered no digests
            // (say, Get-OciCache -Verify filtered to corrupt blobs, and there were none) removes nothing.
            if (any || MyInvocation.ExpectingInput)
            {
                return;
            }
            Guard(store.Root, () =>
            {
                var entries = store.List(false, CancellationToken).ToList();
                string what = string.Create(CultureInfo.InvariantCulture, $"Remove all {entries.Count} entries ({Units.Bytes(entries.Sum(b => b.Size + b.IndexSize))}) and tag records");
                if (!ShouldRemove(store.Root, what, Force ? ConfirmImpact.None : ConfirmImpact.High))
                {
                    return;
                }
                int kept = store.Clear();
                if (kept > 0)
                {
                    WriteWarning($"{kept} {(kept == 1 ? "entry" : "entries")} of the cache stayed: running commands use them.");
                }
            });
        }

        private void RemoveUnused()
        {
            Guard(store.Root, () =>
            {
                var approved = store.ListUnused(CancellationToken)
                    .Where(e => ShouldRemove($"{e.Digest} ({e.Kind}, {Units.Bytes(e.Size)}) in {store.Root}", "Remove cached entry no image uses", ConfirmImpact.Medium))
                    .ToList();
                foreach (var removed in store.Remove(approved, CancellationToken))
                {
                    WriteVerbose($"Removed {removed.Digest} ({removed.Kind}, {Units.Bytes(removed.Size)}): no cached image uses it.");
                }
                if (!WhatIfWanted())
                {
                    store.Verbose = WriteVerbose;
                    store.Warning = WriteWarning;
                    store.EnforceBudget(CancellationToken);
                }
            });
        }

        /// <summary>
        /// ShouldProcess as if this cmdlet's ConfirmImpact were <paramref name="impact"/>: it asks when
        /// -Confirm is given or $ConfirmPreference is at or below the impact, honours -WhatIf, and
        /// otherwise goes ahead (saying so with -Verbose, as ShouldProcess does). ConfirmImpact.None
        /// asks only for -Confirm (that is -Force).
        /// </summary>
        private bool ShouldRemove(string target, string action, ConfirmImpact impact)
        {
            bool confirmAsked = MyInvocation.BoundParameters.TryGetValue("Confirm", out object? confirm) && LanguagePrimitives.IsTrue(confirm);
            var preference = LanguagePrimitives.TryConvertTo(GetVariableValue("ConfirmPreference"), out ConfirmImpact p) ? p : ConfirmImpact.High;
            bool wouldAsk = impact != ConfirmImpact.None && preference != ConfirmImpact.None && impact >= preference;
            if (confirmAsked || wouldAsk || WhatIfWanted())
            {
                return ShouldProcess(target, action);
            }
            WriteVerbose($"Performing the operation \"{action}\" on target \"{target}\".");
            return true;
        }

        private bool WhatIfWanted() => MyInvocation.BoundParameters.TryGetValue("WhatIf", out object? whatIf)
            ? LanguagePrimitives.IsTrue(whatIf)
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));

        private static ErrorRecord InUse(Digest digest) => new(
            new System.InvalidOperationException($"{digest} is in use by a running command (of this or another process); it was kept. Remove it once that command has finished."),
            "CacheEntryInUse", ErrorCategory.ResourceBusy, digest.ToString());
    }
}

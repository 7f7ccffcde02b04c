#Requires -Version 7.4
<#
.SYNOPSIS
    Copies an assembly with MethodImplOptions.AggressiveOptimization set on its methods that
    are not AggressiveInlining; no other byte of the method table, and no IL, changes.

.DESCRIPTION
    Why (measured, docs/design-notes.md, "ZstdSharp and the JIT"): ZstdSharp is a C port whose
    compressor lives in a few large methods. In a new pwsh process .NET first runs them as
    unoptimised tier-0 code, then compiles many on-stack-replacement variants of each while
    two workers sit in them, then tier 1: the first .cpio.zst export of a process took about
    1.6 s against 0.8 s for later ones. AggressiveOptimization makes the JIT compile a method
    fully optimised on its first call; marked as below, that first export took about 1.3 s
    (medians of five new processes each), the same 0.3 s off every `pwsh -c ... | Export-Initramfs`.
    Methods marked AggressiveInlining are left to tiering. Most are small helpers (MEM_read64
    and the like), and a method marked AggressiveOptimization is not inlined into its callers:
    marking them too made a loop of compressions 12-24% slower. A few are big bodies the JIT
    never inlines (more than 32 locals, MAX_INL_LCLS in its inline.h), the hottest of them
    ZSTD_compressBlock_doubleFast_noDict_generic; marked, they start fast but stay about 12%
    slower than the tier-1 code with profile data they otherwise end as, which would cost the
    warm export its target. Unmarked, they reach that code within the first export's parts.

    Also skipped: methods with no IL body (abstract, extern, runtime-implemented) and methods
    marked NoOptimization. The CLI header's StrongNameSigned flag is cleared: the strong-name
    signature no longer matches the bytes, and the assembly should not claim it does. .NET
    (Core) never verifies strong-name signatures, so the assembly identity, which binding uses,
    is unchanged. tests/Pester/Module.Tests.ps1 checks the module's copy against the package's.

.OUTPUTS
    An object with the number of methods marked.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$Path,
    [Parameter(Mandatory)][string]$Destination
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$bytes = [IO.File]::ReadAllBytes($Path)
$pe = [System.Reflection.PortableExecutable.PEReader]::new([IO.MemoryStream]::new($bytes, $false))
try {
    if (-not $pe.HasMetadata) { throw "'$Path' is not a .NET assembly." }
    $md = [System.Reflection.Metadata.PEReaderExtensions]::GetMetadataReader($pe)
    $ecma = [System.Reflection.Metadata.Ecma335.MetadataReaderExtensions]
    $table = [System.Reflection.Metadata.Ecma335.TableIndex]::MethodDef
    $tableStart = $pe.PEHeaders.MetadataStartOffset + $ecma::GetTableMetadataOffset($md, $table)
    $rowSize = $ecma::GetTableRowSize($md, $table)

    $skip = [Reflection.MethodImplAttributes]::AggressiveInlining -bor [Reflection.MethodImplAttributes]::NoOptimization -bor
        [Reflection.MethodImplAttributes]::InternalCall -bor [Reflection.MethodImplAttributes]::Native -bor [Reflection.MethodImplAttributes]::Runtime
    $flag = [int][Reflection.MethodImplAttributes]::AggressiveOptimization
    $marked = 0
    foreach ($handle in $md.MethodDefinitions) {
        $method = $md.GetMethodDefinition($handle)
        $impl = [int]$method.ImplAttributes
        if ($method.RelativeVirtualAddress -eq 0 -or ($impl -band [int]$skip) -or ($impl -band $flag)) { continue }
        # A MethodDef row is RVA (4 bytes), then ImplFlags (2 bytes): ECMA-335 II.22.26.
        $at = $tableStart + ([System.Reflection.Metadata.Ecma335.MetadataTokens]::GetRowNumber($handle) - 1) * $rowSize + 4
        if ([BitConverter]::ToUInt16($bytes, $at) -ne $impl) { throw "MethodDef row layout in '$Path' is not as expected." }
        $impl = $impl -bor $flag
        $bytes[$at] = $impl -band 0xff
        $bytes[$at + 1] = ($impl -shr 8) -band 0xff
        $marked++
    }

    # The CLI header: cb, runtime version (2 x 2), metadata directory (8), then Flags (ECMA-335 II.25.3.3).
    $flagsAt = $pe.PEHeaders.CorHeaderStartOffset + 16
    $corFlags = [BitConverter]::ToUInt32($bytes, $flagsAt)
    if ($corFlags -ne [uint32]$pe.PEHeaders.CorHeader.Flags) { throw "CLI header layout in '$Path' is not as expected." }
    $corFlags = $corFlags -band -bnot [uint32][System.Reflection.PortableExecutable.CorFlags]::StrongNameSigned
    [BitConverter]::GetBytes([uint32]$corFlags).CopyTo($bytes, $flagsAt)
}
finally { $pe.Dispose() }

# Written beside the destination and moved over it: a half-written assembly never exists.
$partial = "$Destination.partial"
[IO.File]::WriteAllBytes($partial, $bytes)
Move-Item -LiteralPath $partial -Destination $Destination -Force
[pscustomobject]@{ Path = $Destination; MethodsMarked = $marked }

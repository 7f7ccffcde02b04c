# The module folder build.ps1 assembles: its ZstdSharp.dll is the package's, with methods marked
# AggressiveOptimization (tools/build/Set-AggressiveOptimization.ps1) and nothing else changed.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    $script:moduleDir = (Get-Module InitramfsPS).ModuleBase
    $script:repoRoot = (Resolve-Path "$PSScriptRoot/../..").Path

    # The package's own ZstdSharp.dll, found as the restore found it.
    $assets = Get-Content -Raw (Join-Path $repoRoot 'src/InitramfsPS.Core/obj/project.assets.json') | ConvertFrom-Json -AsHashtable
    $library = @($assets.libraries.Keys | Where-Object { $_ -like 'ZstdSharp.Port/*' })
    $library.Count | Should -Be 1
    $runtime = @($assets.targets['net8.0'][$library[0]].runtime.Keys)
    $candidates = foreach ($folder in $assets.packageFolders.Keys) { Join-Path $folder $assets.libraries[$library[0]].path $runtime[0] }
    $script:packageDll = @($candidates | Where-Object { Test-Path -LiteralPath $_ })[0]
    $script:shippedDll = Join-Path $moduleDir 'ZstdSharp.dll'

    # Per MethodDef row: name, RVA, ImplAttributes and the file offset of its ImplFlags.
    function Read-MethodTable([byte[]]$Bytes) {
        $pe = [System.Reflection.PortableExecutable.PEReader]::new([IO.MemoryStream]::new($Bytes, $false))
        try {
            $md = [System.Reflection.Metadata.PEReaderExtensions]::GetMetadataReader($pe)
            $ecma = [System.Reflection.Metadata.Ecma335.MetadataReaderExtensions]
            $table = [System.Reflection.Metadata.Ecma335.TableIndex]::MethodDef
            $start = $pe.PEHeaders.MetadataStartOffset + $ecma::GetTableMetadataOffset($md, $table)
            $rowSize = $ecma::GetTableRowSize($md, $table)
            $rows = foreach ($h in $md.MethodDefinitions) {
                $m = $md.GetMethodDefinition($h)
                [pscustomobject]@{
                    Name = $md.GetString($md.GetTypeDefinition($m.GetDeclaringType()).Name) + '.' + $md.GetString($m.Name)
                    Rva = $m.RelativeVirtualAddress
                    Impl = [Reflection.MethodImplAttributes]$m.ImplAttributes
                    FlagsAt = $start + ([System.Reflection.Metadata.Ecma335.MetadataTokens]::GetRowNumber($h) - 1) * $rowSize + 4
                }
            }
            [pscustomobject]@{ Rows = @($rows); CorFlags = $pe.PEHeaders.CorHeader.Flags; CorFlagsAt = $pe.PEHeaders.CorHeaderStartOffset + 16 }
        }
        finally { $pe.Dispose() }
    }
}

Describe 'ZstdSharp.dll in the module' {
    BeforeAll {
        $script:packageBytes = [IO.File]::ReadAllBytes($packageDll)
        $script:shippedBytes = [IO.File]::ReadAllBytes($shippedDll)
        $script:package = Read-MethodTable $packageBytes
        $script:shipped = Read-MethodTable $shippedBytes
        $script:ao = [Reflection.MethodImplAttributes]::AggressiveOptimization
    }

    It 'is compared with the package restore used' {
        $packageDll | Should -Exist
        $packageDll | Should -Not -Be $shippedDll
    }

    It 'marks every method with an IL body, except those to be inlined, AggressiveOptimization' {
        $shipped.Rows.Count | Should -Be $package.Rows.Count
        $leave = [int][Reflection.MethodImplAttributes]::AggressiveInlining -bor [int][Reflection.MethodImplAttributes]::NoOptimization -bor
            [int][Reflection.MethodImplAttributes]::InternalCall -bor [int][Reflection.MethodImplAttributes]::Runtime  # Runtime covers Native: CodeTypeMask
        $wrong = for ($i = 0; $i -lt $package.Rows.Count; $i++) {
            $p = $package.Rows[$i]
            $expected = if ($p.Rva -ne 0 -and -not ($p.Impl -band $leave)) { $p.Impl -bor $ao } else { $p.Impl }
            if ($shipped.Rows[$i].Impl -ne $expected) { "$($p.Name): $($shipped.Rows[$i].Impl), expected $expected" }
        }
        $wrong | Should -BeNullOrEmpty
        @($shipped.Rows | Where-Object { $_.Impl -band $ao }).Count | Should -BeGreaterThan 500
    }

    # Level 3's block compressor: an entry point per minimum match length, marked; the generic
    # body they call is marked AggressiveInlining and left to tiering (see the build script).
    It 'marks the entry points of level 3''s block compressor and leaves its generic body to tiering' {
        ($shipped.Rows | Where-Object Name -eq 'Methods.ZSTD_compressBlock_doubleFast_noDict_5').Impl -band $ao | Should -Be $ao
        $helper = $shipped.Rows | Where-Object Name -eq 'Methods.ZSTD_compressBlock_doubleFast_noDict_generic'
        $helper.Impl -band [Reflection.MethodImplAttributes]::AggressiveInlining | Should -Not -Be 0
        $helper.Impl -band $ao | Should -Be 0
    }

    It 'differs from the package only in those flags and the strong-name flag' {
        $shippedBytes.Length | Should -Be $packageBytes.Length
        $allowed = [Collections.Generic.HashSet[int]]::new()
        foreach ($r in $package.Rows) { [void]$allowed.Add($r.FlagsAt); [void]$allowed.Add($r.FlagsAt + 1) }
        foreach ($k in 0..3) { [void]$allowed.Add($package.CorFlagsAt + $k) }
        $other = for ($i = 0; $i -lt $packageBytes.Length; $i++) {
            if ($packageBytes[$i] -ne $shippedBytes[$i] -and -not $allowed.Contains($i)) { $i }
        }
        @($other) | Should -BeNullOrEmpty
        $package.CorFlags.HasFlag([System.Reflection.PortableExecutable.CorFlags]::StrongNameSigned) | Should -BeTrue
        $shipped.CorFlags | Should -Be ($package.CorFlags -band -bnot [System.Reflection.PortableExecutable.CorFlags]::StrongNameSigned)
    }

    It 'keeps the assembly identity InitramfsPS.dll binds to' {
        [Reflection.AssemblyName]::GetAssemblyName($shippedDll).FullName | Should -Be ([Reflection.AssemblyName]::GetAssemblyName($packageDll).FullName)
    }

    It 'is the copy the module loads, and its flags are what the runtime sees' {
        Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
        $env:INITRAMFSPS_CACHE = Join-Path $TestDrive 'cache'
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = 'not really an init'; Mode = '0755' })
        $image = New-TestOciLayout -Path (Join-Path $TestDrive 'layout') -Layer @(, $tar) -Tag app
        $null = Get-OciImage $image.Reference | Export-Initramfs (Join-Path $TestDrive 'out.cpio.zst') -WarningAction SilentlyContinue
        (Get-Item (Join-Path $TestDrive 'out.cpio.zst')).Length | Should -BeGreaterThan 0
        $loaded = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'ZstdSharp' }
        @($loaded).Count | Should -Be 1
        $loaded.Location | Should -Be $shippedDll
        $method = $loaded.GetType('ZstdSharp.Unsafe.Methods').GetMethod('ZSTD_compressBlock_doubleFast_noDict_5', [Reflection.BindingFlags]'Public, NonPublic, Static')
        $method.MethodImplementationFlags -band $ao | Should -Be $ao
    }
}

# Blake3.dll (the block digests of contents checked at use) gets the same treatment: as tier-0
# code its SIMD hashing cost the first export of a process about 0.5 s of CPU.
Describe 'Blake3.dll in the module' {
    BeforeAll {
        $library = @($assets.libraries.Keys | Where-Object { $_ -like 'Blake3/*' })
        $library.Count | Should -Be 1
        $runtime = @($assets.targets['net8.0'][$library[0]].runtime.Keys)
        $candidates = foreach ($folder in $assets.packageFolders.Keys) { Join-Path $folder $assets.libraries[$library[0]].path $runtime[0] }
        $script:blakePackageBytes = [IO.File]::ReadAllBytes(@($candidates | Where-Object { Test-Path -LiteralPath $_ })[0])
        $script:blakeShippedBytes = [IO.File]::ReadAllBytes((Join-Path $moduleDir 'Blake3.dll'))
        $script:ao = [Reflection.MethodImplAttributes]::AggressiveOptimization
    }

    It 'marks its methods AggressiveOptimization, the hashing core included, and changes nothing else' {
        $package = Read-MethodTable $blakePackageBytes
        $shipped = Read-MethodTable $blakeShippedBytes
        $blakeShippedBytes.Length | Should -Be $blakePackageBytes.Length
        $shipped.Rows.Count | Should -Be $package.Rows.Count
        ($shipped.Rows | Where-Object Name -eq 'Blake3ManagedCore.TryHash16Chunks').Impl -band $ao | Should -Be $ao
        $allowed = [Collections.Generic.HashSet[int]]::new()
        foreach ($r in $package.Rows) { [void]$allowed.Add($r.FlagsAt); [void]$allowed.Add($r.FlagsAt + 1) }
        foreach ($k in 0..3) { [void]$allowed.Add($package.CorFlagsAt + $k) }
        $other = for ($i = 0; $i -lt $blakePackageBytes.Length; $i++) {
            if ($blakePackageBytes[$i] -ne $blakeShippedBytes[$i] -and -not $allowed.Contains($i)) { $i }
        }
        @($other) | Should -BeNullOrEmpty
    }
}

Describe 'The two assemblies' {
    BeforeAll {
        # The assembly references as compiled, read from the files the module ships.
        function Get-AssemblyReference([string] $Path) {
            $pe = [System.Reflection.PortableExecutable.PEReader]::new([IO.File]::OpenRead($Path))
            try {
                $md = [System.Reflection.Metadata.PEReaderExtensions]::GetMetadataReader($pe)
                @($md.AssemblyReferences | ForEach-Object { $md.GetString($md.GetAssemblyReference($_).Name) })
            }
            finally { $pe.Dispose() }
        }
    }

    It 'ships the engine, InitramfsPS.Core.dll, beside the cmdlets' {
        Join-Path $moduleDir 'InitramfsPS.Core.dll' | Should -Exist
        Get-AssemblyReference (Join-Path $moduleDir 'InitramfsPS.dll') | Should -Contain 'InitramfsPS.Core'
    }

    It 'keeps the engine free of PowerShell: InitramfsPS.Core references no System.Management.Automation' {
        $references = Get-AssemblyReference (Join-Path $moduleDir 'InitramfsPS.Core.dll')
        # The check can fail: the cmdlets' assembly does reference it.
        Get-AssemblyReference (Join-Path $moduleDir 'InitramfsPS.dll') | Should -Contain 'System.Management.Automation'
        $references | Should -Contain 'System.Runtime'
        $references | Should -Not -Contain 'System.Management.Automation'
        $references | Should -Not -Contain 'Microsoft.PowerShell.Commands.Utility'
    }
}

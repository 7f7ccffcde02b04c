# Hostile input, round two (and its addendum): inputs that made the module write gigabytes, grow
# quadratically, block forever or read host files. Each Describe is one point of the issue, shown
# with a small input; where the point was a quadratic cost, the allocations of two sizes of input
# are compared (twice the input may cost about twice as much, not four times).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:ModulePath = (Get-Module InitramfsPS).Path
    $script:work = New-TestDirectory -Prefix 'hostile-layers'
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $script:Init = @{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }

    # Seconds and managed bytes allocated (all threads) while $Script runs; its output in Result.
    function script:Measure-Cost([scriptblock] $Script) {
        [GC]::Collect()
        $allocated = [GC]::GetTotalAllocatedBytes($true)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $result = & $Script
        [pscustomobject]@{ Seconds = $sw.Elapsed.TotalSeconds; Allocated = [GC]::GetTotalAllocatedBytes($true) - $allocated; Result = $result }
    }

    # Twice the input may cost about twice as much, not four times: allocations are deterministic
    # enough to compare; the time only has a budget generous for a slow, shared CI machine.
    function script:Assert-Linear($Small, $Large, [double] $Budget) {
        $ratio = $Large.Allocated / [Math]::Max(1L, [long]$Small.Allocated)
        $ratio | Should -BeLessThan 3 -Because ("twice the input allocated {0:N0} bytes against {1:N0} (a quadratic cost gives about 4x)" -f $Large.Allocated, $Small.Allocated)
        $Large.Seconds | Should -BeLessThan ([Math]::Max($Budget, 3 * $Small.Seconds)) -Because "twice the input took $($Large.Seconds) s against $($Small.Seconds) s"
    }

    # The first error of Get-OciImage | Expand-OciLayers of $Reference (an InitramfsException, not a crash), or $null.
    function script:Get-ExpandError([string] $Reference) {
        $err = $null
        $rootfs = Get-OciImage $Reference -ErrorVariable +err -ErrorAction SilentlyContinue | Expand-OciLayers -ErrorVariable +err -ErrorAction SilentlyContinue
        if (-not $err) { return $null }
        $rootfs | Should -BeNullOrEmpty
        $err[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "an expected failure, not an unhandled exception: $($err[0].Exception)"
        $err[0]
    }

    # Runs $Script (with $Arguments) in another runspace of this process. When it has not finished
    # after $Seconds, it is stuck in open(2) of the FIFO $Fifo: the write end is opened, which lets
    # that open return, and the run counts as hung.
    function script:Invoke-Bounded([scriptblock] $Script, [object[]] $Arguments = @(), [string] $Fifo, [int] $Seconds = 15) {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; `$ErrorActionPreference = 'Continue'").AddStatement().AddScript($Script.ToString())
            foreach ($a in $Arguments) { $null = $ps.AddArgument($a) }
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $async = $ps.BeginInvoke()
            $hung = -not $async.AsyncWaitHandle.WaitOne($Seconds * 1000)
            if ($hung -and $Fifo) {
                $writer = [IO.FileStream]::new($Fifo, [IO.FileMode]::Open, [IO.FileAccess]::Write)
                $writer.Dispose()
                $null = $async.AsyncWaitHandle.WaitOne(10000)
            }
            $output = if ($async.IsCompleted) { try { $ps.EndInvoke($async) } catch { $_ } }
            [pscustomobject]@{ Hung = $hung; Seconds = $sw.Elapsed.TotalSeconds; Output = $output; Errors = @($ps.Streams.Error) }
        }
        finally { if ($async.IsCompleted) { $ps.Dispose() } }
    }

    function script:New-Fifo([string] $Path) {
        & mkfifo $Path
        $LASTEXITCODE | Should -Be 0
        $Path
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'A docker save archive' {
    BeforeAll {
        # A docker save archive, unpacked to add members of our own, then packed in the order given and zstd-wrapped.
        function script:New-WrappedArchive([string] $Name, [scriptblock] $AddMembers) {
            $dir = Join-Path $work "$Name-members"
            $plain = New-TestDockerArchive -Path (Join-Path $work "$Name-plain.tar") -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'etc/hostname'; Data = 'box' })))
            $null = New-Item -ItemType Directory $dir
            & tar -C $dir -xf $plain.Path
            $members = & $AddMembers $dir $plain
            $tar = Join-Path $work "$Name.tar"
            & tar --owner=0 --group=0 --numeric-owner -C $dir -cf $tar @members
            $LASTEXITCODE | Should -Be 0
            & zstd -q -f --rm $tar -o "$tar.zst"
            $LASTEXITCODE | Should -Be 0
            Remove-Item -Recurse -Force $dir
            [pscustomobject]@{ Path = "$tar.zst"; Plain = $plain }
        }
    }

    It 'stores only the members its manifest references: unreferenced 64 MiB members stay out of the cache' {
        $archive = New-WrappedArchive bomb {
            param($dir, $plain)
            # one unreferenced member before manifest.json and one after it, named like a layer and like a blob
            & truncate -s 64M (Join-Path $dir 'junk.tar')
            $null = New-Item -ItemType Directory (Join-Path $dir 'blobs/sha256')
            & truncate -s 64M (Join-Path $dir "blobs/sha256/$('0' * 64)")
            @('junk.tar', 'manifest.json', $plain.ConfigName) + $plain.LayerPaths + @('blobs')
        }
        (Get-Item $archive.Path).Length | Should -BeLessThan 1MB
        $env:INITRAMFSPS_CACHE = Join-Path $work 'bomb-cache'
        try {
            $image = Get-OciImage "docker-archive:$($archive.Path)"
            $blobs = @(Get-ChildItem (Join-Path $env:INITRAMFSPS_CACHE 'blobs/sha256') -File)
            $blobs | Where-Object Length -GT 1MB | Should -BeNullOrEmpty -Because 'nothing unreferenced was written to the cache'
            @($blobs.Name | Sort-Object) | Should -Be @(@($archive.Plain.ConfigDigest) + $archive.Plain.LayerDigests | ForEach-Object { $_.Substring(7) } | Sort-Object -Unique)
            @(Get-ChildItem (Join-Path $env:INITRAMFSPS_CACHE 'tmp') -File -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
            ($image | Expand-OciLayers).GetEntry('/etc/hostname').Size | Should -Be 3
        }
        finally { $env:INITRAMFSPS_CACHE = Join-Path $work cache }
    }

    It 'follows a layer named through a <Link>, in a <Wrapper> archive' -ForEach @(
        @{ Link = 'symlink'; Wrapper = 'plain' }
        @{ Link = 'hardlink'; Wrapper = 'gzip' }
        @{ Link = 'symlink'; Wrapper = 'zstd' }
    ) {
        $plain = New-TestDockerArchive -Path (Join-Path $work "link-$Link-$Wrapper-plain.tar") -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'etc/linked'; Data = $Link })))
        $dir = Join-Path $work "link-$Link-$Wrapper"
        $null = New-Item -ItemType Directory $dir
        & tar -C $dir -xf $plain.Path
        # the layer moves to a member the manifest does not name; the name it uses becomes a link to it (legacy order: manifest.json last)
        $null = New-Item -ItemType Directory (Join-Path $dir 'first')
        Move-Item (Join-Path $dir $plain.LayerPaths[0]) (Join-Path $dir 'first/layer.tar')
        if ($Link -eq 'symlink') { $null = New-Item -ItemType SymbolicLink -Path (Join-Path $dir $plain.LayerPaths[0]) -Target '../first/layer.tar' }
        else { $null = New-Item -ItemType HardLink -Path (Join-Path $dir $plain.LayerPaths[0]) -Target (Join-Path $dir 'first/layer.tar') }
        $tar = Join-Path $work "link-$Link-$Wrapper.tar"
        & tar -C $dir -cf $tar $plain.ConfigName first (Split-Path $plain.LayerPaths[0]) manifest.json
        $LASTEXITCODE | Should -Be 0
        switch ($Wrapper) { 'gzip' { & gzip -f $tar; $tar += '.gz' } 'zstd' { & zstd -q -f --rm $tar -o "$tar.zst"; $tar += '.zst' } }
        (Get-OciImage "docker-archive:$tar" | Expand-OciLayers).GetEntry('/etc/linked').Size | Should -Be $Link.Length
    }

    It 'refuses a layer member that claims more than the bound of a layer: LayerTooLarge, and stores nothing' {
        $plain = New-TestDockerArchive -Path (Join-Path $work 'huge-plain.tar') -Layer @(, (New-TestTar -Entry @($Init)))
        $dir = Join-Path $work 'huge-members'
        $null = New-Item -ItemType Directory $dir
        & tar -C $dir -xf $plain.Path
        # manifest.json and the config as GNU tar writes them, then the layer by hand: its header claims 17 GiB (a PAX size)
        $tar = [IO.MemoryStream]::new()
        $entries = @(
            @{ Name = 'manifest.json'; Data = [IO.File]::ReadAllBytes((Join-Path $dir 'manifest.json')) }
            @{ Name = $plain.ConfigName; Data = [IO.File]::ReadAllBytes((Join-Path $dir $plain.ConfigName)) }
            @{ Name = $plain.LayerPaths[0]; Data = [IO.File]::ReadAllBytes((Join-Path $dir $plain.LayerPaths[0])); Size = 17GB }
        )
        $bytes = New-TestTar -Entry $entries -NoEndBlocks
        $path = Join-Path $work 'huge.tar'
        [IO.File]::WriteAllBytes($path, $bytes)
        & zstd -q -f $path -o "$path.zst"
        $env:INITRAMFSPS_CACHE = Join-Path $work 'huge-cache'
        try {
            foreach ($p in $path, "$path.zst") {
                $err = $null
                Get-OciImage "docker-archive:$p" -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
                $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerTooLarge,*'
                $err[0].Exception.Message | Should -Match ([regex]::Escape($plain.LayerPaths[0]))
            }
            @(Get-ChildItem $env:INITRAMFSPS_CACHE -Recurse -File -ErrorAction SilentlyContinue | Where-Object { $_.FullName -like '*/blobs/*' -or $_.FullName -like '*/tmp/*' }) |
                Should -BeNullOrEmpty -Because 'nothing of a refused archive is stored'
        }
        finally { $env:INITRAMFSPS_CACHE = Join-Path $work cache }
    }
}

Describe 'Deep paths' {
    It 'refuses a PAX path of <Components> components at parse time: LayerEntryNameTooLong, naming the layer and a shortened path' -ForEach @(
        @{ Components = 2049 }   # 4097 bytes
        @{ Components = 16000 }
    ) {
        $path = ((1..$Components | ForEach-Object { 'a' }) -join '/') + '/'
        $img = New-TestOciLayout -Path (Join-Path $work "deep$Components") -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'x'; Type = 'Dir'; Pax = @{ path = $path } }))) -Compression none -Tag t
        $cost = Measure-Cost { Get-ExpandError $img.Reference }
        $e = $cost.Result
        $e.FullyQualifiedErrorId | Should -BeLike 'LayerEntryNameTooLong,*'
        $e.Exception.Message | Should -Match "^layer 1 \($($img.LayerDigests[0].Substring(7, 12))\): "
        $e.Exception.Message | Should -Match 'a/a/a.*…'
        $e.Exception.Message.Length | Should -BeLessThan 600 -Because 'the path is shortened'
        $cost.Allocated | Should -BeLessThan 200MB
    }

    It 'takes a name of 4095 bytes, and refuses a name and a hardlink target of 4096 (PATH_MAX with the NUL is one too many)' {
        $name = ('d' * 200 + '/') * 19 + 'f' * 276   # 3819 + 276 = 4095 bytes
        [Text.Encoding]::UTF8.GetByteCount($name) | Should -Be 4095
        $img = New-TestOciLayout -Path (Join-Path $work 'longest') -Layer @(, (New-TestTar -Entry @($Init, @{ Name = "./$name"; Data = 'deep' }))) -Tag t
        (Get-OciImage $img.Reference | Expand-OciLayers).GetEntry("/$name").Size | Should -Be 4
        $img = New-TestOciLayout -Path (Join-Path $work 'toolong') -Layer @(, (New-TestTar -Entry @($Init, @{ Name = "${name}g"; Data = 'deep' }))) -Tag t
        (Get-ExpandError $img.Reference).FullyQualifiedErrorId | Should -BeLike 'LayerEntryNameTooLong,*'
        $img = New-TestOciLayout -Path (Join-Path $work 'longlink') -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = "${name}g" }))) -Tag t
        (Get-ExpandError $img.Reference).FullyQualifiedErrorId | Should -BeLike 'LayerEntryNameTooLong,*'
    }

    It 'applies paths below PATH_MAX at a cost linear in their length' {
        $cost = foreach ($depth in 1000, 2000) {
            # 200 files in one directory $depth levels deep: one entry made by New-TestTar, copied
            # with its PAX path's last digits changed (New-TestTar itself takes seconds for this)
            $dir = ((1..$depth | ForEach-Object { 'a' }) -join '/')
            $one = New-TestTar -Entry @(@{ Name = 'f'; Data = ''; Pax = @{ path = "$dir/f000" } }) -NoEndBlocks
            $at = [Text.Encoding]::ASCII.GetString($one).LastIndexOf("f000`n") + 1
            $tar = [IO.MemoryStream]::new()
            foreach ($i in 1..200) {
                [Text.Encoding]::ASCII.GetBytes(('{0:D3}' -f $i)).CopyTo($one, $at)
                $tar.Write($one, 0, $one.Length)
            }
            $tar.Write([byte[]]::new(1024), 0, 1024)
            $img = New-TestOciLayout -Path (Join-Path $work "depth$depth") -Layer @(, $tar.ToArray()) -Compression none -Tag t
            $null = Get-OciImage $img.Reference | Expand-OciLayers   # a first run, so that both measured runs are warm
            Measure-Cost { (Get-OciImage $img.Reference | Expand-OciLayers).Count }
        }
        $cost[0].Result | Should -Be 1201
        $cost[1].Result | Should -Be 2201
        Assert-Linear $cost[0] $cost[1] -Budget 5
    }
}

Describe 'The entry cap' {
    BeforeAll {
        # Expands with a cap of our own (the cmdlets use 2,000,000), through the engine.
        function script:Expand-Capped([string] $Reference, [int] $Cap) {
            $image = Get-OciImage $Reference
            $optionsType = Get-EngineType InitramfsPS.Layers.ExpandOptions
            $options = [Activator]::CreateInstance($optionsType)
            $optionsType.GetProperty('MaxEntries').SetValue($options, $Cap)
            Invoke-EngineMethod InitramfsPS.Layers.ImageExpander Expand -Arguments @($image, (New-EngineObject InitramfsPS.Cache.BlobStore -Arguments $env:INITRAMFSPS_CACHE), $options, [Threading.CancellationToken]::None)
        }
    }

    It 'stops the parse of a <Compression> layer at the cap: TooManyEntries, before a corrupt header past it' -ForEach @(
        @{ Compression = 'none' }
        @{ Compression = 'gzip' }
    ) {
        $entries = @(foreach ($i in 1..150) { @{ Name = "f$i"; Data = '' } }) + @(@{ Name = 'broken'; Data = 'x'; RawChecksum = 1 })
        $img = New-TestOciLayout -Path (Join-Path $work "cap-$Compression") -Layer @(, (New-TestTar -Entry $entries)) -Compression $Compression -Tag t
        $e = { Expand-Capped $img.Reference 100 } | Should -Throw -PassThru
        $e.Exception.InnerException | Should -BeOfType [InitramfsPS.Errors.InitramfsException]
        $e.Exception.InnerException.ErrorId | Should -Be 'TooManyEntries' -Because 'the entries past the cap are never read'
        $e.Exception.InnerException.Message | Should -Match "^layer 1 \($($img.LayerDigests[0].Substring(7, 12))\): "
    }

    It 'counts the directories a layer creates implicitly' {
        $deep = ((1..300 | ForEach-Object { "d$_" }) -join '/')
        $img = New-TestOciLayout -Path (Join-Path $work 'cap-implicit') -Layer @(, (New-TestTar -Entry @(foreach ($i in 1..10) { @{ Name = "top$i/$deep/f"; Data = '' } }))) -Tag t
        $e = { Expand-Capped $img.Reference 1000 } | Should -Throw -PassThru
        $e.Exception.InnerException.ErrorId | Should -Be 'TooManyEntries'
        (Expand-Capped $img.Reference 5000).Count | Should -Be 3021
    }
}

Describe 'Import-Initramfs of a large hardlink group' {
    BeforeAll {
        # A newc archive of /d and one hardlink group of $Count names in it, the data on the last name (as GNU cpio writes it).
        function script:New-LinkGroupArchive([string] $Path, [int] $Count) {
            $fs = [IO.File]::Create($Path)
            $ascii = [Text.Encoding]::ASCII
            $pad = [byte[]]::new(4)
            $record = {
                param([string] $Name, [int] $Mode, [int] $Ino, [int] $NLink, [byte[]] $Data)
                if ($null -eq $Data) { $Data = [byte[]]::new(0) }
                $nameBytes = $ascii.GetBytes($Name + "`0")
                $head = $ascii.GetBytes(('070701{0:X8}{1:X8}{2:X8}{2:X8}{3:X8}{4:X8}{5:X8}{2:X8}{2:X8}{2:X8}{2:X8}{6:X8}{2:X8}' -f $Ino, $Mode, 0, $NLink, 1700000000, $Data.Length, $nameBytes.Length))
                $fs.Write($head, 0, 110); $fs.Write($nameBytes, 0, $nameBytes.Length)
                $fs.Write($pad, 0, (4 - ((110 + $nameBytes.Length) % 4)) % 4)
                $fs.Write($Data, 0, $Data.Length)
                $fs.Write($pad, 0, (4 - ($Data.Length % 4)) % 4)
            }
            & $record 'd' 0x41ED 1 2 @()
            $data = $ascii.GetBytes('shared data')
            for ($i = 1; $i -le $Count; $i++) { & $record ('d/l{0:D6}' -f $i) 0x81A4 7 $Count $(if ($i -eq $Count) { $data } else { @() }) }
            & $record 'TRAILER!!!' 0 0 1 @()
            $fs.Dispose()
            $Path
        }
    }

    It 'is linear in the size of the group' {
        $cost = foreach ($n in 2000, 4000) {
            $archive = New-LinkGroupArchive (Join-Path $work "links$n.cpio") $n
            Measure-Cost { Import-Initramfs -LiteralPath $archive }
        }
        foreach ($i in 0, 1) {
            $r = $cost[$i].Result
            $r.Count | Should -Be (2 + 2000 * ($i + 1))
            $first = $r.GetEntry('/d/l000001'); $last = $r.GetEntry(('/d/l{0:D6}' -f (2000 * ($i + 1))))
            $first.Size | Should -Be 11; $last.Size | Should -Be 11
            [object]::ReferenceEquals($first.Hardlink, $last.Hardlink) | Should -BeTrue
        }
        Assert-Linear $cost[0] $cost[1] -Budget 5
    }
}

Describe 'Special files where a file is expected' {
    BeforeAll {
        $script:Fifos = Join-Path $work 'fifos'
        $null = New-Item -ItemType Directory $Fifos
        # uncompressed: its layer blob is read at every expansion (a compressed one only until its tar is in the cache)
        $script:Good = New-TestOciLayout -Path (Join-Path $work 'fifo-base') -Layer @(, (New-TestTar -Entry @($Init))) -Compression none -Tag t
        # A copy of the good layout whose file $Which is a FIFO.
        function script:New-LayoutWithFifo([string] $Which) {
            $dir = Join-Path $work "fifo-layout-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
            Copy-Item -Recurse $Good.Path $dir
            $file = switch ($Which) {
                'index.json' { Join-Path $dir 'index.json' }
                'manifest' { Join-Path $dir "blobs/sha256/$($Good.ManifestDigest.Substring(7))" }
                'config' { Join-Path $dir "blobs/sha256/$($Good.ConfigDigest.Substring(7))" }
                'layer' { Join-Path $dir "blobs/sha256/$($Good.LayerDigests[0].Substring(7))" }
            }
            Remove-Item $file
            [pscustomobject]@{ Reference = "oci:${dir}:t"; Fifo = (New-Fifo $file) }
        }
    }

    It 'Get-OciImage | Expand-OciLayers of a layout whose <Which> is a FIFO fails at once: <Id>' -ForEach @(
        @{ Which = 'index.json'; Id = 'LayoutInvalid' }
        @{ Which = 'manifest'; Id = 'BlobNotRegularFile' }
        @{ Which = 'config'; Id = 'BlobNotRegularFile' }
        @{ Which = 'layer'; Id = 'BlobNotRegularFile' }
    ) {
        $layout = New-LayoutWithFifo $Which
        $r = Invoke-Bounded { param($ref) Get-OciImage $ref | Expand-OciLayers } -Arguments $layout.Reference -Fifo $layout.Fifo
        $r.Hung | Should -BeFalse -Because 'a FIFO is never opened for a blocking read'
        $r.Errors.Count | Should -Be 1
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $r.Errors[0].Exception.Message | Should -Match 'FIFO'
    }

    It '<Command> of a FIFO fails at once: <Id>' -ForEach @(
        @{ Command = 'Import-Initramfs'; Id = 'ArchiveNotFile'; Script = { param($p) Import-Initramfs -LiteralPath $p } }
        @{ Command = 'Test-Initramfs -Path'; Id = 'ArchiveNotFile'; Script = { param($p) Test-Initramfs -Path $p } }
        @{ Command = 'Compare-Initramfs'; Id = 'ArchiveNotFile'; Script = { param($p) Compare-Initramfs $p $p } }
        @{ Command = 'Get-OciImage docker-archive:'; Id = 'ArchiveNotFile'; Script = { param($p) Get-OciImage "docker-archive:$p" } }
    ) {
        $fifo = New-Fifo (Join-Path $Fifos "$([guid]::NewGuid().ToString('N')).cpio")
        $r = Invoke-Bounded $Script -Arguments $fifo -Fifo $fifo
        $r.Hung | Should -BeFalse -Because 'a FIFO is never opened for a blocking read'
        $r.Errors.Count | Should -BeGreaterThan 0
        $r.Errors[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $r.Errors[0].Exception.Message | Should -Match 'FIFO'
    }

    It 'Add-InitramfsFile of a FIFO adds an empty file that the export never opens' {
        $fifo = New-Fifo (Join-Path $Fifos 'pipe')
        $out = Join-Path $work 'fifo-added.cpio'
        $r = Invoke-Bounded { param($ref, $fifo, $out) Get-OciImage $ref | Add-InitramfsFile $fifo /pipe | Export-Initramfs $out -Force -WarningAction SilentlyContinue } -Arguments $Good.Reference, $fifo, $out -Fifo $fifo
        $r.Hung | Should -BeFalse
        $r.Errors | Should -BeNullOrEmpty
        (Get-CpioListing $out | Where-Object Name -EQ 'pipe').Size | Should -Be 0
    }
}

Describe 'A zstd layer that starts with a skippable frame' {
    It 'expands (<Source>)' -ForEach @(
        @{ Source = 'layout' }
        @{ Source = 'docker-archive' }
    ) {
        $tar = New-TestTar -Entry @($Init, @{ Name = 'etc/skipped'; Data = 'frame' })
        $img = New-TestOciLayout -Path (Join-Path $work "skippable-$Source") -Layer @(, $tar) -Compression zstd -Tag t
        $blob = "$($img.Path)/blobs/sha256/$($img.LayerDigests[0].Substring(7))"
        $bytes = [byte[]](0x5A, 0x2A, 0x4D, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5) + [IO.File]::ReadAllBytes($blob)
        $reference = if ($Source -eq 'layout') {
            $hex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($bytes))).Hash.ToLowerInvariant()
            [IO.File]::WriteAllBytes("$($img.Path)/blobs/sha256/$hex", $bytes)
            $mpath = "$($img.Path)/blobs/sha256/$($img.ManifestDigest.Substring(7))"
            $manifest = (Get-Content -Raw $mpath).Replace($img.LayerDigests[0], "sha256:$hex").Replace("`"size`":$($img.LayerSizes[0])", "`"size`":$($bytes.Length)")
            $mbytes = [Text.Encoding]::UTF8.GetBytes($manifest)
            $mhex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($mbytes))).Hash.ToLowerInvariant()
            [IO.File]::WriteAllBytes("$($img.Path)/blobs/sha256/$mhex", $mbytes)
            $index = (Get-Content -Raw "$($img.Path)/index.json").Replace($img.ManifestDigest.Substring(7), $mhex) -replace '"size": \d+', "`"size`": $($mbytes.Length)"
            Set-Content "$($img.Path)/index.json" $index
            $img.Reference
        }
        else {
            $archive = New-TestDockerArchive -Path (Join-Path $work 'skippable.tar') -Layer @(, $tar)
            $dir = Join-Path $work 'skippable-members'
            $null = New-Item -ItemType Directory $dir
            & tar -C $dir -xf $archive.Path
            [IO.File]::WriteAllBytes((Join-Path $dir $archive.LayerPaths[0]), $bytes)
            & tar -C $dir -cf $archive.Path manifest.json $archive.ConfigName $archive.LayerPaths[0]
            "docker-archive:$($archive.Path)"
        }
        (Get-OciImage $reference | Expand-OciLayers).GetEntry('/etc/skipped').Size | Should -Be 5
    }

}

Describe 'The end of a zstd part' {
    It 'Import-Initramfs finds the end of a zstd part of 200,000 empty blocks with buffered reads' {
        $cpio = Join-Path $work 'small.cpio'
        $img = New-TestOciLayout -Path (Join-Path $work 'zstd-part') -Layer @(, (New-TestTar -Entry @($Init))) -Tag t
        $null = Get-OciImage $img.Reference | Export-Initramfs $cpio -Force -WarningAction SilentlyContinue
        $data = [IO.File]::ReadAllBytes($cpio)
        $data.Length | Should -BeLessThan 128KB
        $part = Join-Path $work 'empty-blocks.cpio.zst'
        $fs = [IO.File]::Create($part)
        # frame header: magic, descriptor (no checksum, no content size), window 128 KiB
        $fs.Write([byte[]](0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38), 0, 6)
        $empty = [byte[]]::new(3 * 200000)   # raw blocks of 0 bytes: 3-byte headers of zeros
        $fs.Write($empty, 0, $empty.Length)
        $last = ($data.Length -shl 3) -bor 1  # a raw block, the last one
        $fs.Write([byte[]](($last -band 0xFF), (($last -shr 8) -band 0xFF), (($last -shr 16) -band 0xFF)), 0, 3)
        $fs.Write($data, 0, $data.Length)
        $fs.Dispose()
        & zstd -q -t $part
        $LASTEXITCODE | Should -Be 0 -Because 'the part is valid zstd'
        $syscr = { [long]((@(Get-Content /proc/self/io) -match '^syscr:')[0] -replace '\D', '') }
        $before = & $syscr
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $r = Import-Initramfs -LiteralPath $part
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 10
        ((& $syscr) - $before) | Should -BeLessThan 20000 -Because 'block headers are not read one pread at a time'
        $r.GetEntry('/init').Size | Should -Be 8
    }
}

Describe 'Layout blobs that are symlinks' {
    BeforeAll {
        $script:HostFile = Join-Path $work 'host-secret'
        [IO.File]::WriteAllBytes($HostFile, [byte[]]::new(12345))
    }

    It 'does not follow a <Which> blob that links to a host file, nor say its size: BlobOutsideLayout' -ForEach @(
        @{ Which = 'layer' }
        @{ Which = 'config' }
        @{ Which = 'manifest' }
    ) {
        $img = New-TestOciLayout -Path (Join-Path $work "link-$Which") -Layer @(, (New-TestTar -Entry @($Init))) -Compression none -Tag t
        $digest = @{ layer = $img.LayerDigests[0]; config = $img.ConfigDigest; manifest = $img.ManifestDigest }[$Which]
        $blob = "$($img.Path)/blobs/sha256/$($digest.Substring(7))"
        Remove-Item $blob
        $null = New-Item -ItemType SymbolicLink -Path $blob -Target $HostFile
        foreach ($reference in $img.Reference, "oci:$($img.Path)@$($img.ManifestDigest)") {
            $e = Get-ExpandError $reference
            $e.FullyQualifiedErrorId | Should -BeLike 'BlobOutsideLayout,*'
            $e.Exception.Message | Should -Not -Match '12345'
            $e.Exception.Message | Should -Not -Match ([regex]::Escape($HostFile))
        }
    }

    It 'follows a blobs directory that links to another layout''s, and a blob that links inside the layout' {
        $img = New-TestOciLayout -Path (Join-Path $work 'link-target') -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'etc/linked'; Data = 'yes' }))) -Compression none -Tag t
        $other = Join-Path $work 'link-other'
        $null = New-Item -ItemType Directory $other
        Copy-Item "$($img.Path)/index.json", "$($img.Path)/oci-layout" $other
        $null = New-Item -ItemType SymbolicLink -Path "$other/blobs" -Target "$($img.Path)/blobs"
        (Get-OciImage "oci:${other}:t" | Expand-OciLayers).GetEntry('/etc/linked').Size | Should -Be 3

        $layer = "$($img.Path)/blobs/sha256/$($img.LayerDigests[0].Substring(7))"
        Move-Item $layer "$($img.Path)/layer-kept-here"
        $null = New-Item -ItemType SymbolicLink -Path $layer -Target '../../layer-kept-here'
        (Get-OciImage $img.Reference | Expand-OciLayers).GetEntry('/etc/linked').Size | Should -Be 3
    }
}

Describe 'A hardlink and its target''s whiteout in one layer' {
    It 'the link before the whiteout keeps the lower file under its name, as containerd applies it (<Case>)' -ForEach @(
        @{ Case = 'a .wh. of the file'; Upper = @(@{ Name = 'h'; Type = 'Hardlink'; LinkName = 'd/f' }, @{ Name = 'd/.wh.f' }) }
        @{ Case = 'a .wh. of its directory'; Upper = @(@{ Name = 'h'; Type = 'Hardlink'; LinkName = 'd/f' }, @{ Name = '.wh.d' }) }
        @{ Case = 'an opaque directory'; Upper = @(@{ Name = 'h'; Type = 'Hardlink'; LinkName = 'd/f' }, @{ Name = 'd/.wh..wh..opq' }) }
    ) {
        $lower = New-TestTar -Entry @($Init, @{ Name = 'd/'; Type = 'Dir' }, @{ Name = 'd/f'; Data = 'lower'; Mode = '0750'; Uid = 7 }, @{ Name = 'd/g'; Type = 'Hardlink'; LinkName = 'd/f' })
        $img = New-TestOciLayout -Path (Join-Path $work "wh-link-$([guid]::NewGuid().ToString('N').Substring(0, 8))") -Layer $lower, (New-TestTar -Entry $Upper) -Tag t
        foreach ($pass in 'parsed', 'from the layer index') {
            $r = Get-OciImage $img.Reference | Expand-OciLayers
            $r.GetEntry('/d/f') | Should -BeNullOrEmpty -Because "the whiteout removed it ($pass)"
            $h = $r.GetEntry('/h')
            $h.Type | Should -Be 'File'
            $h.Size | Should -Be 5
            $h.Uid | Should -Be 7
            if ($Case -eq 'a .wh. of the file') {
                [object]::ReferenceEquals($h.Hardlink, $r.GetEntry('/d/g').Hardlink) | Should -BeTrue -Because "the link joins the inode the lower d/g still has ($pass)"
            }
        }
        $out = Join-Path $work "wh-link-$([guid]::NewGuid().ToString('N')).cpio"
        $null = Get-OciImage $img.Reference | Export-Initramfs $out -NoDefaultEntries -Force -WarningAction SilentlyContinue
        $listing = @(Get-CpioListing $out)
        $listing.Name | Should -Not -Contain 'd/f'
        $ino = ($listing | Where-Object Name -EQ 'h').Ino
        ($listing | Where-Object Ino -EQ $ino | Measure-Object Size -Sum).Sum | Should -Be 5 -Because 'the data is stored once for the inode'
    }

    It 'the whiteout before the link leaves the link nothing to point to: LayerHardlinkTargetMissing, as containerd' {
        $lower = New-TestTar -Entry @($Init, @{ Name = 'f'; Data = 'lower' })
        $img = New-TestOciLayout -Path (Join-Path $work 'wh-first') -Layer $lower, (New-TestTar -Entry @(@{ Name = '.wh.f' }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 'f' })) -Tag t
        $e = Get-ExpandError $img.Reference
        $e.FullyQualifiedErrorId | Should -BeLike 'LayerHardlinkTargetMissing,*'
        $e.Exception.Message | Should -Match '^layer 2 \('
    }
}

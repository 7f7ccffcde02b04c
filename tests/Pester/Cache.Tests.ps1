# Get-OciCache and Clear-OciCache on a cache the tests fill themselves (a docker archive import
# copies every member into the cache by digest).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    function script:Fill-Cache {
        $archive = Join-Path $work "saved-$([guid]::NewGuid()).tar"
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/init`n$([guid]::NewGuid())"; Mode = '0755' })
        New-TestDockerArchive -Path $archive -Layer @(, $tar) | Out-Null
        Get-OciImage "docker-archive:$archive"
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Get-OciCache' {
    It 'lists each cached blob with its digest and size, and -Verify finds a damaged one' {
        $image = Fill-Cache
        $blobs = @(Get-OciCache)
        $blobs.Digest.ForEach({ $_.ToString() }) | Should -Contain $image.Layers[0].Digest.ToString()
        $layer = $blobs | Where-Object { $_.Digest.ToString() -eq $image.Layers[0].Digest.ToString() }
        $layer.Size | Should -Be (Get-Item $layer.Path).Length
        (Get-OciCache -Verify | Where-Object Valid -NE $true) | Should -BeNullOrEmpty

        $bytes = [IO.File]::ReadAllBytes($layer.Path); $bytes[100] = $bytes[100] -bxor 1; [IO.File]::WriteAllBytes($layer.Path, $bytes)
        $bad = @(Get-OciCache -Verify -WarningAction SilentlyContinue | Where-Object Valid -EQ $false)
        $bad.Count | Should -Be 1
        $bad[0].Digest.ToString() | Should -Be $image.Layers[0].Digest.ToString()
    }
}

Describe 'Clear-OciCache' {
    It 'removes only the blobs piped to it' {
        Clear-OciCache -Confirm:$false
        $image = Fill-Cache
        $count = @(Get-OciCache).Count
        Get-OciCache | Where-Object { $_.Digest.ToString() -eq $image.Layers[0].Digest.ToString() } | Clear-OciCache
        @(Get-OciCache).Count | Should -Be ($count - 1)
        Test-Path (Join-Path $env:INITRAMFSPS_CACHE "blobs/sha256/$($image.Layers[0].Digest.Hex)") | Should -BeFalse
    }

    It 'removes nothing when the pipeline delivers nothing' {
        Fill-Cache | Out-Null
        $count = @(Get-OciCache).Count
        $count | Should -BeGreaterThan 0
        Get-OciCache -Verify | Where-Object Valid -EQ $false | Clear-OciCache
        @() | Clear-OciCache
        @(Get-OciCache).Count | Should -Be $count
    }

    It 'honours -WhatIf, and without arguments (and without asking) empties the cache' {
        Fill-Cache | Out-Null
        $count = @(Get-OciCache).Count
        Clear-OciCache -WhatIf
        @(Get-OciCache).Count | Should -Be $count
        Clear-OciCache -Confirm:$false
        @(Get-OciCache) | Should -BeNullOrEmpty
    }
}

Describe 'Temporary files a killed process left' {
    It 'are swept on the next cache write, while one a live writer holds is kept' {
        Fill-Cache | Out-Null
        $tmp = Join-Path $env:INITRAMFSPS_CACHE tmp
        $stale = Join-Path $tmp 'left-by-kill-9.partial'
        $live = Join-Path $tmp 'being-written.partial'
        Set-Content $stale 'half a blob'
        Set-Content $live 'another process is writing this'
        $held = [System.IO.File]::Open($live, 'Open', 'ReadWrite', 'None')
        try {
            Fill-Cache | Out-Null
            Test-Path $stale | Should -BeFalse
            Test-Path $live | Should -BeTrue
        }
        finally { $held.Dispose() }
        (Get-OciCache -Verify | Where-Object Valid -NE $true) | Should -BeNullOrEmpty
    }
}

Describe 'Expanding a cached layer again' {
    BeforeAll {
        function script:Get-ReadBytes { [long]((@(Get-Content /proc/self/io) -match '^rchar:')[0] -replace '\D', '') }
        $random = [byte[]]::new(16MB); [System.Random]::new(7).NextBytes($random)
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }, @{ Name = 'blob.bin'; Data = $random }, @{ Name = 'etc/'; Type = 'Dir' })
        $script:indexed = New-TestOciLayout -Path (Join-Path $work 'indexed') -Layer @(, $tar) -Tag t
    }

    It 'reads the layer index, not the layer, and gives the same rootfs' {
        $before = Get-ReadBytes
        $first = Get-OciImage $indexed.Reference | Expand-OciLayers
        $firstRead = (Get-ReadBytes) - $before
        $before = Get-ReadBytes
        $second = Get-OciImage $indexed.Reference | Expand-OciLayers
        $secondRead = (Get-ReadBytes) - $before
        $firstRead | Should -BeGreaterThan 16MB -Because 'the first expansion decompresses the layer'
        $secondRead | Should -BeLessThan 2MB -Because 'the second loads the index kept beside the verified tar'
        ($second.GetEntries() | ForEach-Object ToString) | Should -Be ($first.GetEntries() | ForEach-Object ToString)
        $a = $first | Export-Initramfs (Join-Path $work 'first.cpio')
        $b = $second | Export-Initramfs (Join-Path $work 'second.cpio')
        $b.Sha256 | Should -Be $a.Sha256
    }

    It 'still refuses a cached layer larger than -MaxLayerSize, and keeps it for a larger limit' {
        $null = Get-OciImage $indexed.Reference | Expand-OciLayers
        $err = $null
        $r = Get-OciImage $indexed.Reference | Expand-OciLayers -MaxLayerSize 1MB -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerTooLarge,*'
        $err[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
        (Get-OciImage $indexed.Reference | Expand-OciLayers -MaxLayerSize 32MB).GetEntry('/blob.bin').Size | Should -Be 16MB
    }

    It 'ignores an index edited to point outside the root, and reads the verified tar instead' {
        $diff = $indexed.DiffIds[0].Substring(7)
        $index = Join-Path $env:INITRAMFSPS_CACHE "index/sha256/$diff"
        Test-Path $index | Should -BeTrue
        $bytes = [IO.File]::ReadAllBytes($index)
        $text = [Text.Encoding]::UTF8.GetString($bytes)
        $at = $text.IndexOf('/blob.bin')
        $at | Should -BeGreaterThan 0
        # Same length, so only the path check can refuse it: '/blob.bin' becomes '/../x.bin'.
        $evil = [Text.Encoding]::UTF8.GetBytes('/../x.bin')
        [Array]::Copy($evil, 0, $bytes, $at, $evil.Length)
        [IO.File]::WriteAllBytes($index, $bytes)
        $rootfs = Get-OciImage $indexed.Reference | Expand-OciLayers
        $rootfs.GetEntry('/blob.bin').Size | Should -Be 16MB
        @($rootfs.GetEntries() | Where-Object Path -Like '*x.bin') | Should -BeNullOrEmpty
    }
}

